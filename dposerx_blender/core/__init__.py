"""The bpy-free core: the skeleton and its part tables, rotations, pose layouts, the prior (network, noise
process, weights) with its solvers and the tasks built on them, and motion file formats and conventions (mocap/).

Nothing under this package may import bpy or mathutils; it is tested with plain pytest.
"""
