"""Blender-side code: everything here may use ``bpy`` (and only runs on Blender's main thread)."""
