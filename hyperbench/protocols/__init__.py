"""What is measured under which transformation: the rotation protocols of the invariance study (rotation.py)
and the transformation families of the transform and compensate tasks (families.py)."""
