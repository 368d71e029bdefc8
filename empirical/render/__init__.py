"""The renderer, in lucid's four parts: ``param`` (image parametrizations), ``transform``
(robustness), ``objectives`` (what is maximized), ``loop`` (the optimization); plus the
snapshot rule and resumable render jobs."""
