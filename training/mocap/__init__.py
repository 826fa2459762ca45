"""Mocap sources turned into SMPL-X poses: parsers, retargeting, synthetic parts."""
