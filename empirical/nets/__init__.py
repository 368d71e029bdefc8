"""Networks: the registry (``load_model``), layers and hooks, responses, input checks, fusing."""
