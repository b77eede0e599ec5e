"""What a finished run can be turned into, without Spark.

report.py  `dist-mnist report`: PNG figures and an HTML page about a run (matplotlib)
export.py  `dist-mnist export --onnx`: the model as an ONNX graph
"""
