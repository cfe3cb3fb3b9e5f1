"""Writers: TensorBoard + metrics.jsonl with clu, and the TensorFlow-free fallback path."""

import json
import subprocess
import sys
import textwrap

import numpy as np

from vid2vid_jax import writers


def test_tensorboard_writer_writes_events_and_jsonl(tmp_path):
  writer = writers.create_writer(tmp_path, just_logging=False)
  writer.write_scalars(3, {'g/gan': 1.5, 'd/real': 0.25})
  writer.write_images(3, {'samples': np.zeros((1, 4, 4, 3), np.float32)})
  writer.flush()
  assert list(tmp_path.glob('events.out.tfevents.*'))
  records = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert records == [{'step': 3, 'g/gan': 1.5, 'd/real': 0.25}]


def test_fallback_writer_without_tensorflow(tmp_path):
  code = textwrap.dedent(f'''
      import importlib.abc, sys
      class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
          if name.split('.')[0] == 'tensorflow':
            raise ImportError('blocked ' + name)
      sys.meta_path.insert(0, Block())
      import numpy as np
      from vid2vid_jax import writers
      w = writers.create_writer({str(tmp_path)!r}, just_logging=False)
      assert isinstance(w, writers.LoggingWriter), type(w)
      w.write_scalars(7, {{'g/vgg': 2.0}})
      w.write_images(7, {{'fake/grid': np.ones((2, 4, 4, 3), np.float32)}})
      p = writers.ProgressLogger(10, w, every_secs=0.0)
      p(1, t=0.0); p(3, t=1.0)
      assert 'tensorflow' not in sys.modules
  ''')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'metric_writers unavailable' in result.stderr
  lines = (tmp_path / 'metrics.jsonl').read_text().splitlines()
  assert json.loads(lines[0]) == {'step': 7, 'g/vgg': 2.0}
  assert json.loads(lines[1]) == {'step': 3, 'steps_per_sec': 2.0}
  assert sorted(p.name for p in (tmp_path / 'images').iterdir()) == [
      'fake_grid_00000007_0.png', 'fake_grid_00000007_1.png']


def test_just_logging_writes_nothing(tmp_path):
  writer = writers.create_writer(tmp_path / 'w', just_logging=True)
  writer.write_scalars(1, {'x': 1.0})
  assert not (tmp_path / 'w').exists()


def test_progress_line_has_bar_and_true_eta():
  p = writers.ProgressLogger(840)
  line = p.line(210, rate=2.0)
  assert line.startswith('step 210/840 [#####...............] 25%')
  assert line.endswith('ETA 5.2 min')  # (840 - 210) / 2 s
