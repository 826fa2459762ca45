"""Training-side code: mocap parsing, retargeting, datasets. Never shipped in the extension zip."""
