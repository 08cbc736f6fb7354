import keras
import numpy as np

from gpt_tf.layers import CausalSelfAttention, DecoderBlock, PositionEmbedding
from gpt_tf.models import GPTBackbone, GPTCausalLM
from tests.helpers import assert_close

IDS = np.random.default_rng(1).integers(3, 320, size=(2, 12)).astype("int32")


def test_exactly_n_decoder_blocks(tiny_model, tiny_config):
    blocks = [layer for layer in tiny_model.backbone.layers if isinstance(layer, DecoderBlock)]
    assert len(blocks) == tiny_config.model.num_layers == 2
    assert tiny_model.num_parameters() == tiny_config.model.num_parameters()


def test_tied_embeddings(tiny_model):
    embedding = tiny_model.backbone.token_embedding
    hidden = np.random.default_rng(0).normal(size=(1, 1, 16)).astype("float32")
    expected = hidden[0, 0] @ np.asarray(embedding.embeddings).T
    assert_close(np.asarray(embedding(hidden, reverse=True))[0, 0], expected, 1e-5)
    names = [w.path for w in tiny_model.weights]
    assert not any("reverse" in n for n in names)


def test_causality(tiny_model):
    base = np.asarray(tiny_model(IDS))
    for t in range(IDS.shape[1] - 1):
        changed = IDS.copy()
        changed[:, t + 1] = (changed[:, t + 1] + 1) % 320
        out = np.asarray(tiny_model(changed))
        assert_close(out[:, : t + 1], base[:, : t + 1], 1e-6, f"positions <= {t}")
        assert np.abs(out[:, t + 1] - base[:, t + 1]).max() > 1e-6


def test_right_padding_does_not_change_real_positions(tiny_model):
    padded = np.concatenate([IDS, np.zeros((2, 5), "int32")], axis=1)
    assert_close(np.asarray(tiny_model(padded))[:, :12], np.asarray(tiny_model(IDS)), 1e-6)


def test_attention_padding_mask_hides_keys():
    layer = CausalSelfAttention(num_heads=2, hidden_dim=8)
    x = np.random.default_rng(2).normal(size=(1, 6, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0]])
    other = x.copy()
    other[:, 4:] = 99.0
    assert_close(np.asarray(layer(x, padding_mask=mask))[:, :4],
                 np.asarray(layer(other, padding_mask=mask))[:, :4], 1e-5)


def test_cache_path_equals_full_forward(tiny_model):
    full = np.asarray(tiny_model(IDS))
    cache = tiny_model.empty_cache(2, 16)
    logits, _, cache = tiny_model.call_with_cache(IDS[:, :5], cache, 0)
    pieces = [np.asarray(logits)]
    for t in range(5, 12):
        logits, _, cache = tiny_model.call_with_cache(IDS[:, t:t + 1], cache, t)
        pieces.append(np.asarray(logits))
    assert_close(np.concatenate(pieces, axis=1), full, 1e-5, "cached logits")


def test_keras_save_load_round_trip(tiny_model, tmp_path):
    path = str(tmp_path / "model.keras")
    tiny_model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, GPTCausalLM) and isinstance(loaded.backbone, GPTBackbone)
    assert_close(np.asarray(loaded(IDS)), np.asarray(tiny_model(IDS)), 0.0)
    assert loaded.backbone.get_config() == tiny_model.backbone.get_config()


def test_layer_configs_round_trip():
    for layer in (CausalSelfAttention(2, 8, dropout=0.1),
                  DecoderBlock(2, 8, 32, dropout=0.2, layer_norm_epsilon=1e-6),
                  PositionEmbedding(16, 8)):
        clone = layer.__class__.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def test_initial_weights_are_not_shared(tiny_config):
    import keras

    keras.utils.set_random_seed(3)
    model = GPTCausalLM.from_model_config(tiny_config.model)
    weights = {w.path: np.asarray(w) for w in model.weights}
    blocks = model.backbone.blocks
    for name in ("attention/qkv/kernel", "attention/output_projection/kernel",
                 "mlp_in/kernel", "mlp_out/kernel"):
        first, second = (weights[f"{b.name}/{name}"] for b in blocks[:2])
        assert not np.array_equal(first, second), name
    table = weights["position_embedding/embeddings"]
    assert not np.array_equal(table, weights["token_embedding/embeddings"][: len(table)])
    # ... yet the same seed builds the same model.
    keras.utils.set_random_seed(3)
    again = GPTCausalLM.from_model_config(tiny_config.model)
    for w in again.weights:
        np.testing.assert_array_equal(np.asarray(w), weights[w.path])
