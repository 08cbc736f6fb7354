"""The four task apps: thin CLIs and Python functions over `gpt_tf.clients`.

    python -m apps.generate "ROMEO. O, she doth teach" --max-new-tokens 60
    python -m apps.translate "In the beginning God created the heavens and the earth."
    python -m apps.qa --context "..." --question "Who ...?"
    python -m apps.sentiment "a gripping, beautifully acted film"

Every app takes `--model TARGET`: a run directory (Keras), a SavedModel
directory, an http(s)://HOST:PORT/v1/models/NAME URL (TF Serving REST, or
`gpt-tf serve`), or a TFLite export; the default is the shipped model.
"""
