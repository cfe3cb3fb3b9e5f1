"""The library packages import on machines without TensorFlow (e.g. the GPU image)."""

import subprocess
import sys
import textwrap


BLOCK_TF = textwrap.dedent('''
    import importlib.abc, sys
    class BlockTensorFlow(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'tensorflow_datasets', 'tf_keras'):
          raise ImportError(f'blocked import of {name}')
        return None
    sys.meta_path.insert(0, BlockTensorFlow())
''')


def _run(code: str, cwd) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-c', BLOCK_TF + textwrap.dedent(code)],
                        cwd=cwd, capture_output=True, text=True, timeout=300)


def test_blocker_really_blocks_tensorflow(repo_root):
  result = _run('import tensorflow', repo_root)
  assert result.returncode != 0 and 'blocked import of tensorflow' in result.stderr


def test_library_imports_without_tensorflow(repo_root):
  result = _run('''
      import importlib, pkgutil
      import vid2vid_jax, flow
      for package in (vid2vid_jax, flow):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):
          importlib.import_module(info.name)
      import configs.default, configs.demo
      assert 'tensorflow' not in sys.modules
      print('ok')
  ''', repo_root)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().endswith('ok')
