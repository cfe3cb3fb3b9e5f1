"""tf.data input pipelines for the original vid2vid folder layouts, plus synthetic datasets.

Public API:
  create_dataset(config, *, split, n_frames_total, seed, process_index, process_count)
      -> ClipIterator of host-local batches (``pipeline`` module docstring), resumable via
         get_state()/set_state().
  iterate_test_sequences(config, split='test') -> (name, frame iterator) per video.
  validate.find_problems(root, layout, ...) -> list of Problem(path, message).
  synthetic.generate(domain, out, ...) writes procedural datasets in the original layouts.

The pipeline (and TensorFlow) is imported on first use, so ``python -m input_pipeline.validate``
and ``python -m input_pipeline.synthetic`` start without loading TensorFlow.
"""

_PUBLIC = ('ClipIterator', 'create_dataset', 'iterate_test_sequences')


def __getattr__(name):
  if name in _PUBLIC:
    from input_pipeline import pipeline  # pylint: disable=g-import-not-at-top
    return getattr(pipeline, name)
  raise AttributeError(f'module input_pipeline has no attribute {name!r}')


def __dir__():
  return sorted(list(globals()) + list(_PUBLIC))
