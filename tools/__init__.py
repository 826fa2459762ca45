"""Project tools that never ship: the extension builder and the headless demo (run through build.py)."""
