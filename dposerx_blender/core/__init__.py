"""The bpy-free core: skeleton, rotations, pose layouts and (later) the prior and its solvers.

Nothing under this package may import bpy or mathutils; it is tested with plain pytest.
"""
