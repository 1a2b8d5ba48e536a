"""Showcase: the talk's figures, which the ``passage`` command line draws, one job per module.

``showdown``  linear baseline against the RNN over training-set sizes, learning-curve PNG
``embedmap``  t-SNE map of the learned word embeddings, coloured by label
``trace``     the model's prediction after every token of a text (terminal, HTML, PNG)
``figures``   lazy matplotlib (Agg canvas), atomic PNG writes

The command line's data-file reader is ``passage.cli.tables``. Nothing here is imported by
``import passage``; matplotlib and scikit-learn are needed only by the modules that draw or fit
a baseline (``pip install 'passage[plots]'``).
"""
