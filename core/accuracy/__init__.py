"""Accuracy on a labelled set (`zoo eval`): reading the set, evaluating one or several precisions and
backends in one pass over the decoded inputs, and the measured rows `zoo info` shows beside the
published ones (`zoo eval --save`, `zoo perf --save`).

The core knows two generic forms of labelled set, a folder per class and a CSV of `path,label`;
dataset-specific formats are DatasetFormats registered by plugins (`formats.py`).
"""
