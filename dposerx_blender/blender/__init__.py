"""Everything that touches bpy: registration order here, one module per concern."""
import bpy

from . import io_ops, jobs, locks, panels, props, rig_map_ui, skeleton_builder, solver_ops

_CLASSES = (*locks.classes, *skeleton_builder.classes, *solver_ops.classes, *panels.classes, *io_ops.classes,
            *rig_map_ui.classes)


def register():
    props.register()
    rig_map_ui.register_properties()
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.VIEW3D_MT_armature_add.append(skeleton_builder.draw_add_menu)
    bpy.types.TOPBAR_MT_file_import.append(io_ops.draw_import_menu)
    bpy.types.TOPBAR_MT_file_export.append(io_ops.draw_export_menu)


def unregister():
    bpy.types.TOPBAR_MT_file_export.remove(io_ops.draw_export_menu)
    bpy.types.TOPBAR_MT_file_import.remove(io_ops.draw_import_menu)
    bpy.types.VIEW3D_MT_armature_add.remove(skeleton_builder.draw_add_menu)
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
    rig_map_ui.unregister_properties()
    props.unregister()
    jobs.clear_priors()
