"""One module per experiment, each ``Config`` → ``run_x`` → ``Result`` (with ``to_json()``)."""
