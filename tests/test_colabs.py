"""The colab notebooks run top to bottom (with a tiny config)."""

import os

import nbformat
from nbclient import NotebookClient


def test_quickstart_notebook_runs(repo_root, tmp_path, monkeypatch):
  notebook = nbformat.read(repo_root / 'colabs' / 'quickstart.ipynb', as_version=4)
  monkeypatch.setenv('V2V_NOTEBOOK_TINY', '1')
  monkeypatch.setenv('V2V_NOTEBOOK_WORKDIR', str(tmp_path / 'run'))
  client = NotebookClient(notebook, timeout=900, kernel_name='python3',
                          resources={'metadata': {'path': str(repo_root / 'colabs')}})
  client.execute()
  outputs = [o for cell in notebook.cells if cell.cell_type == 'code' for o in cell.outputs]
  assert not [o for o in outputs if o.output_type == 'error']
  assert any('image/png' in o.get('data', {}) for o in outputs)  # frames shown inline
  assert any('<video' in o.get('data', {}).get('text/html', '') for o in outputs)
  assert (tmp_path / 'run' / 'checkpoints').is_dir()
