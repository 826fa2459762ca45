"""Training-only mocap readers (ASF/AMC, FBX through bpy) and hand fitting; the BVH reader, retargeting and joint
maps ship with the extension in dposerx_blender.core.mocap."""
