"""Views of the event stream: a plain log (headless) and the live console (tui)."""
