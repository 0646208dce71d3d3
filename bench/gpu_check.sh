#!/usr/bin/env bash
# Every pending GPU check in one run, for a lent GPU machine with a CUDA torch (see the README,
# "GPU"). Logs go to $OUT (default out/gpu), one file per check:
#   env.txt          the GPU, nvcc, torch and numpy versions
#   gsplat_build.log gsplat's CUDA extension, compiled in the background (TORCH_CUDA_ARCH_LIST)
#   dnf.log          bench/gpu_steps.py: s/step of every DNF `paper` stage, fields and diffusion
#   pytest.log       the CUDA tests: tests/render (gsplat vs our reference), DS4D and DNF training
#   raster.log       bench/raster.py --cuda: gsplat, our dispatch, our torch path on the GPU
#   ds4d.log         bench/gpu_steps.py: s/step of the DS4D `paper` stages (gsplat)
# Packages the machine lacks can travel as wheels in .whl/ (installed into /tmp/site); the DS4D
# clip as .gpu/clip.npz (`python bench/gpu_steps.py --save-clip .gpu/clip.npz`).
set -u
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
PY=${PY:-python3}
STEPS=${STEPS:-200}  # per stage; DNF_ONLY, DNF_STEPS, DNF_TIMEOUT narrow the DNF part
export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-8}
export PATH=$PATH:/usr/local/cuda/bin
export PYTHONPATH=$PWD
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=$PWD:/tmp/site
fi
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
CLIP=.gpu/clip.npz
[ -f "$CLIP" ] || CLIP=${ANIM4D_SHARED_DATA:-../shared/data}/videos/cat_king_fg.mp4

{ nvidia-smi; which nvcc && nvcc --version | tail -2
  $PY -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda,
torch.cuda.get_device_name(), 'numpy', numpy.__version__)"; } > "$OUT/env.txt" 2>&1

stamp "gsplat build (background)"
( timeout 400 $PY -c "from gsplat.cuda._backend import _C; print('gsplat built:', _C)"
  echo "gsplat rc=$?" ) > "$OUT/gsplat_build.log" 2>&1 &
GS=$!

DNF_ONLY=${DNF_ONLY:-fields gen}
stamp "DNF paper stages ($DNF_ONLY)"
timeout "${DNF_TIMEOUT:-240}" $PY bench/gpu_steps.py --device cuda --only $DNF_ONLY \
  --steps "${DNF_STEPS:-$STEPS}" --warmup 5 --tf32 > "$OUT/dnf.log" 2>&1
echo "dnf rc=$?" >> "$OUT/dnf.log"
grep -E "s/step|rc=|Error|error" "$OUT/dnf.log" | tail -20

stamp "waiting for gsplat"
wait $GS
tail -3 "$OUT/gsplat_build.log"
RAST=auto
grep -q "gsplat built" "$OUT/gsplat_build.log" || RAST=torch

stamp "DS4D paper stages (rasterizer $RAST)"
timeout 120 $PY bench/gpu_steps.py --device cuda --only ds4d --clip "$CLIP" --steps "$STEPS" \
  --warmup 10 --tf32 --rasterizer $RAST > "$OUT/ds4d.log" 2>&1
echo "ds4d rc=$?" >> "$OUT/ds4d.log"
grep -E "s/step|rc=|Error|error" "$OUT/ds4d.log" | tail -8

stamp "CUDA tests"
timeout 150 $PY -m pytest -p no:cacheprovider -p no:randomly -rA \
  tests/render/test_raster.py -k "cuda or gsplat" tests/ds4d/test_cuda_train.py \
  tests/dnf/test_cuda.py > "$OUT/pytest.log" 2>&1
echo "pytest rc=$?" >> "$OUT/pytest.log"
grep -E "^(PASSED|FAILED|ERROR|SKIPPED)|passed|failed|rc=" "$OUT/pytest.log" | tail -25

stamp "raster bench"
timeout 100 $PY bench/raster.py --cuda --counts 10000 100000 --sizes 256 512 --no-baselines \
  --repeats 1 --threads 8 > "$OUT/raster.log" 2>&1
echo "raster rc=$?" >> "$OUT/raster.log"
grep -E "^cuda|rc=|Error" "$OUT/raster.log"
stamp "done"
