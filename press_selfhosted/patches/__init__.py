"""Data patches listed in press_selfhosted/patches.txt (each module defines ``execute()``)."""
