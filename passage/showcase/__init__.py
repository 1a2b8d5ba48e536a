"""Showcase: the pieces behind the ``passage`` command line tool, one job per module.

``tables``    read texts and labels from CSV / TSV / JSON-lines files (gzip too)
``labels``    infer the task from the labels; map class names to ids and back
``training``  build and train the standard text model (Embedding -> recurrent -> Dense)
``baseline``  TF-IDF uni+bigrams + a linear model, grid searched (needs scikit-learn)
``showdown``  linear baseline against the RNN over training-set sizes, learning-curve PNG
``embedmap``  t-SNE map of the learned word embeddings, coloured by label
``trace``     the model's prediction after every token of a text (terminal, HTML, PNG)
``figures``   lazy matplotlib (Agg canvas), atomic PNG writes

Nothing here is imported by ``import passage``; matplotlib and scikit-learn are needed only by
the modules that draw or fit a baseline (``pip install 'passage[plots]'``).
"""
