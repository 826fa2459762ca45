"""DPoser-X for Blender: a diffusion pose prior for SMPL-X armatures (Blender extension entry point).

Only the Blender layer registers here; torch and the prior are imported when a job first runs.
"""


def register():
    from . import blender

    blender.register()


def unregister():
    from . import blender

    blender.unregister()
