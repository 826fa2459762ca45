"""Add-on preferences and the per-scene settings that the DPoser-X panel edits and the operators read."""
from __future__ import annotations

from types import SimpleNamespace

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

ADDON_PACKAGE = __package__.rpartition(".")[0]  # "dposerx_blender", or "bl_ext.<repo>.dposerx_blender"


class DPOSERX_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    threads: IntProperty(name="Threads", default=0, min=0, max=256,
                         description="CPU threads for the prior (0: automatic, one fewer than the CPU cores, "
                                     "leaving one for Blender). More threads than idle cores slow it down")
    device: EnumProperty(name="Device", default='cpu',
                         items=[('cpu', "CPU", "Run the prior on the CPU"),
                                ('cuda', "CUDA GPU", "Run the prior on an NVIDIA GPU (needs a CUDA build of torch)")])
    weights_dir: StringProperty(name="Weights Folder", subtype='DIR_PATH', default="",
                                description="Folder with prior.safetensors and dposerx.json (empty: the bundled "
                                            "weights)")

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        for name in ("threads", "device", "weights_dir"):
            layout.prop(self, name)


def preferences(context):
    """The add-on's preferences, or their defaults when it was registered without Preferences (a script calling
    register(), tests): Blender only creates the preferences entry when the add-on is enabled."""
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    if addon is not None:
        return addon.preferences
    properties = DPOSERX_AP_preferences.bl_rna.properties
    return SimpleNamespace(**{name: properties[name].default for name in ("threads", "device", "weights_dir")})


class DPOSERX_PG_settings(bpy.types.PropertyGroup):
    part_body: BoolProperty(name="Body", default=True, description="Let the prior change the body joints")
    part_hands: BoolProperty(name="Hands", default=True, description="Let the prior change the finger joints")
    part_face: BoolProperty(name="Face", default=True, description="Let the prior change the jaw and the eyes")
    seed: IntProperty(name="Seed", default=0, min=0, description="Same seed, same result")
    key_result: BoolProperty(name="Key Result", default=False,
                             description="Insert keys for the result (always done when auto-keying is on)")
    # Complete Pose
    hypotheses: IntProperty(name="Hypotheses", default=10, min=1, max=64,
                            description="How many candidate poses to compute; cycle through them afterwards")
    strength: FloatProperty(name="Strength", default=1.0, min=0.0, max=2.0,
                            description="How strongly the prior pulls the completed joints")
    # Vary Pose
    vary_strength: FloatProperty(name="Variation", default=0.3, min=0.01, max=1.0,  # 0 would change nothing
                                 description="How far the variation may move from the current pose")
    # Pin to Target
    pin_cursor: BoolProperty(name="Active Bone to 3D Cursor", default=False,
                             description="Also pin the active bone to the 3D cursor")
    # Clean Mocap
    clean_action_range: BoolProperty(name="Whole Action", default=True,
                                     description="Clean the active action's keyed frame range (off: from Start "
                                                 "to End)")
    clean_start: IntProperty(name="Start", default=1, description="First frame to clean")
    clean_end: IntProperty(name="End", default=250, description="Last frame to clean")
    clean_strength: FloatProperty(name="Strength", default=1.0, min=0.0, max=2.0,
                                  description="1: remove the noise measured in the capture; 2: twice as smooth "
                                              "(half the cut-off frequency); 0: no change. Glitches and frozen "
                                              "frames are re-filled at any strength above 0")
    clean_add_curves: BoolProperty(name="Key Still Bones", default=False,
                                   description="Also key bones that have no rotation curves (off: only existing "
                                               "curves change, on the frames that have keys)")
    # Generate Pose Library
    library_count: IntProperty(name="Count", default=8, min=1, max=1000, description="Number of poses")
    diversity: FloatProperty(name="Diversity", default=1.0, min=0.1, max=2.0,
                             description="Sampling temperature: higher gives more unusual poses")
    library_conditioned: BoolProperty(name="Keep Locked Bones", default=False,
                                      description="Generate poses that keep the locked bones as they are")
    library_assets: BoolProperty(name="Pose Assets", default=True,
                                 description="Create one pose asset (an Action marked as asset) per pose")
    library_keys: BoolProperty(name="Keys", default=False,
                               description="Key the poses on consecutive frames from the current one")
    library_catalog: StringProperty(name="Catalog", default="DPoser-X/Generated",
                                    description="Asset catalog path for the pose assets")


classes = (DPOSERX_AP_preferences, DPOSERX_PG_settings)


def register_with_pointer(property_classes, owner, attribute: str, group) -> None:
    """Register property classes and hang `group` on `owner` (a bpy.types ID class) as `attribute`."""
    for cls in property_classes:
        bpy.utils.register_class(cls)
    setattr(owner, attribute, PointerProperty(type=group))


def unregister_with_pointer(property_classes, owner, attribute: str) -> None:
    delattr(owner, attribute)
    for cls in reversed(property_classes):
        bpy.utils.unregister_class(cls)


def register():
    register_with_pointer(classes, bpy.types.Scene, "dposerx", DPOSERX_PG_settings)


def unregister():
    unregister_with_pointer(classes, bpy.types.Scene, "dposerx")
