"""4D sequence data: read animated sources into constant-topology mesh sequences, write them.

Modules (one job each):

- :mod:`.gltf_buffers` GLB/JSON parsing, buffers and accessors; :mod:`.gltf_anim` clips,
  channel sampling, node hierarchy; :mod:`.gltf_reader` bake a clip (skinning, morph targets,
  node animation) into a :class:`shared.meshseq.MeshSequence`;
- :mod:`.anime` DeformingThings4D ``.anime`` read/write; :mod:`.frames_io` per-frame OBJ/PLY;
  :mod:`.export` ``export_sequence`` to obj/ply/pc2/anime/npz (PC2 itself is ``shared.pc2``);
- :mod:`.readers` ``read_sequence`` for any supported file; :mod:`.weld` merge seam-split
  vertices; :mod:`.normalize` DNF-style unit box and its inverse;
- :mod:`.skinning` linear blend skinning; :mod:`.transforms` quaternion/matrix helpers;
- :mod:`.procedural` seeded rigged creatures with gait cycles;
- :mod:`.jobs` the ``sequence.bake`` and ``creature.procedural`` job kinds.

Conventions: right-handed, Y-up (as glTF), source units; times in seconds from 0; UVs with a
bottom-left origin (glTF's V flipped, as Blender does); colours linear RGBA.
"""

from .export import EXPORT_FORMATS, export_sequence
from .normalize import NormTransform, normalize
from .readers import BakeConfig, list_clips, read_sequence
from .weld import WeldConfig, weld

__all__ = [
    "EXPORT_FORMATS", "BakeConfig", "NormTransform", "WeldConfig", "export_sequence",
    "list_clips", "normalize", "read_sequence", "weld",
]
