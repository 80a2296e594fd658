"""One panel per module; each has `show(state)` and redraws only when its inputs changed."""
