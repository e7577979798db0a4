"""One module per concern, each exposing ``router``; api/app.py lists them."""
