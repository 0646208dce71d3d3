"""Blender-free logic of the add-on: no ``bpy`` import anywhere in this package.

Everything here runs (and is tested) in plain Python; the ``bl`` package applies it to Blender.
"""
