"""Running bigEVY: its Ray, its model files, the files it writes."""
