"""`zoo serve`: the zoo as a local HTTP service with a web page (the `modelzoo[serve]` extra).

`modelzoo.serve.app.create_app(...)` builds the FastAPI app; this package's other modules need no
FastAPI, and nothing outside `zoo serve` imports it.
"""
