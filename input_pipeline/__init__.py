"""tf.data input pipelines for the original vid2vid folder layouts, plus synthetic datasets.

Public API:
  create_dataset(config, *, split, n_frames_total, seed, process_index, process_count)
      -> ClipIterator of host-local batches (``pipeline`` module docstring), resumable via
         get_state()/set_state().
  iterate_test_sequences(config, split='test') -> (name, frame iterator) per video.
  validate.find_problems(root, layout, ...) -> list of Problem(path, message).
  synthetic.generate(domain, out, ...) writes procedural datasets in the original layouts.
"""

from input_pipeline.pipeline import ClipIterator
from input_pipeline.pipeline import create_dataset
from input_pipeline.pipeline import iterate_test_sequences
