#!/bin/bash
# GPU checks and benchmarks in one lease (see /work/.library/device/README.md of the dev tools).
#
# Usage, on the device machine from the repo root, with clu/ml_collections wheels in .whl and
# a copy of ../shared/fixtures in .fx (both git-ignored, carried):
#   bash benchmarks/gpu_session.sh parity|generator|train|flow ...
# Each section prints its tables; logs go to $OUT when set.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import jax, torch; print("jax", jax.__version__, jax.devices(), "torch", torch.__version__)'
date -u

gen_pair() {  # WxH ngf dtype
  local w=${1%x*} h=${1#*x}
  for forms in ${FORMS:-tuned}; do
    python3 benchmarks/generator.py --height $h --width $w --ngf $2 --label_nc 35 --n_frames_G 3 \
      --dtype $3 --conv_impl $forms --runs 20 2>&1 | tail -1 | sed "s/^/[jax $3 $forms] /"
  done
  python3 benchmarks/generator_torch.py --height $h --width $w --ngf $2 --label_nc 35 \
    --n_frames_G 3 --device cuda --dtype $3 --runs 20 --warmup 3 2>&1 | tail -1 | sed "s/^/[torch $3] /"
}

for section in "$@"; do
  echo "=== $section"
  case $section in
    parity)
      python3 -m vid2vid_jax.tools.network_parity .fx/vid2vid_reference 2>&1 | tee "$OUT/parity.log" | tail -90
      [ -d .fx/flownet2_reference ] && python3 -m flow.flownet2_parity .fx/flownet2_reference 2>&1 | tail -30 ;;
    generator)
      for size in ${SIZES:-512x256 1024x512}; do
        for dtype in float32 bfloat16; do gen_pair $size ${NGF:-64} $dtype; done
      done ;;
    train)
      python3 benchmarks/train_step.py --sizes ${TRAIN_SIZES:-512x256,1024x512} --steps 5 \
        --json "$OUT/train_step.json" 2>&1 | tail -12 ;;
    train_remat)
      python3 benchmarks/train_step.py --sizes 2048x1024 --dtypes bfloat16 --remat --steps 3 \
        --json "$OUT/train_step_remat.json" 2>&1 | tail -6 ;;
    inference)
      python3 benchmarks/inference.py --sizes 1024x512,2048x1024 --chunk 8 --frames 32 \
        --json "$OUT/inference.json" 2>&1 | tail -8 ;;
    flow)
      python3 benchmarks/flownet2.py --sizes 512x256,1024x512,2048x1024 --runs 10 2>&1 | tail -10 ;;
  esac
done
date -u
