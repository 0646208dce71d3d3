"""Add-on preferences: backend address, CURVE keys, timeouts, local backend, import defaults."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

ADDON_PACKAGE = __package__.rsplit(".", 1)[0]  # "bl_ext.<repo>.anim4d" or "blender_addon"
DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
STORAGE_ITEMS = [
    ("AUTO", "Automatic", "Shape keys, or a PC2 cache above about 200 MB of shape-key data"),
    ("SHAPE_KEYS", "Shape Keys", "Absolute shape keys in the .blend: fastest playback"),
    ("PC2", "PC2 Cache", "A point cache file next to the .blend: small .blend, any length"),
]


class ANIM4D_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    address: StringProperty(
        name="Server Address", default=DEFAULT_ADDRESS,
        description="ZeroMQ address of the Anim4D backend, e.g. tcp://127.0.0.1:5555")
    timeout: FloatProperty(
        name="Timeout (s)", default=10.0, min=0.5, max=600.0,
        description="How long to wait for the backend before reporting it unreachable")
    server_key: StringProperty(
        name="Server Public Key", subtype="FILE_PATH",
        description="CURVE: the server's public key file (server.key); empty: no encryption")
    client_key: StringProperty(
        name="Client Secret Key", subtype="FILE_PATH",
        description="CURVE: this client's secret key file (client.key_secret)")
    backend_python: StringProperty(
        name="Backend Python", subtype="FILE_PATH",
        description="Python of an environment where anim4d is installed, for a local backend")
    backend_data_dir: StringProperty(
        name="Backend Data", subtype="DIR_PATH",
        description="Where the local backend keeps jobs and results (empty: its default)")
    start_local: BoolProperty(
        name="Start Local Backend on Connect", default=False,
        description="Start `anim4d serve` as a child process when connecting to a loopback address")
    results_dir: StringProperty(
        name="Results Folder", subtype="DIR_PATH",
        description="Where fetched results are stored (empty: the system's temporary folder)")
    storage: EnumProperty(name="Mesh Storage", items=STORAGE_ITEMS, default="AUTO")
    import_when_done: BoolProperty(
        name="Import When Done", default=True,
        description="Import a finished job automatically (background scripts wait for it)")

    def draw(self, context):
        layout = self.layout
        col = layout.column(heading="Backend")
        col.prop(self, "address")
        col.prop(self, "timeout")
        col.prop(self, "server_key")
        col.prop(self, "client_key")
        col = layout.column(heading="Local Backend")
        col.prop(self, "backend_python")
        col.prop(self, "backend_data_dir")
        col.prop(self, "start_local")
        col = layout.column(heading="Import")
        col.prop(self, "storage")
        col.prop(self, "results_dir")
        col.prop(self, "import_when_done")


class _Defaults:
    """Preference values when the add-on is used without being registered (scripts, tests)."""

    address = os.environ.get("ANIM4D_SERVER", DEFAULT_ADDRESS)
    timeout = 10.0
    server_key = client_key = backend_python = backend_data_dir = results_dir = ""
    start_local = False
    storage = "AUTO"
    import_when_done = True


def get() -> ANIM4D_AP_preferences | _Defaults:
    """The add-on's preferences (defaults when it is not registered)."""
    addon = bpy.context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None and addon.preferences else _Defaults()


def results_root() -> Path:
    """Folder holding fetched result folders (one per job)."""
    chosen = get().results_dir
    if chosen:
        return Path(bpy.path.abspath(chosen))
    return Path(tempfile.gettempdir()) / "anim4d_results"
