"""The 市民之声 bulletin: rendered from indicator tables only (no figure is recomputed here)."""
