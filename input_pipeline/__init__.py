"""tf.data input pipelines for the original vid2vid folder layouts, plus synthetic datasets."""
