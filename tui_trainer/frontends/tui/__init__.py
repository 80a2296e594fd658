"""The live training console (Textual). Import `launch` to start it; nothing here is
imported by the engine or by headless runs."""
