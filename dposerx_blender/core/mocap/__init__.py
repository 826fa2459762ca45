"""Mocap onto SMPL-X, without bpy: the `Motion` form, the BVH reader, bone aiming, retargeting with joint-map
presets (joint_maps/*.toml), and the SMPL-X motion conventions of the importers (resampling, hand reference,
up axis). Shipped with the extension; training/ builds its data set with the same code."""
