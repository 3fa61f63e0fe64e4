"""Reads wgtrain's TensorBoard run folders back with the `tensorboard` package, as
TensorBoard itself does, and prints one JSON object: for each run folder given, its
scalars ({tag: [[step, value], ...]}), its HParams plugin data ({tag: message as a dict})
and the event files' version.

Every record of every event file is first read with TensorBoard's own record reader,
which checks both masked CRC-32Cs and raises on a bad one (EventAccumulator would only
log it and stop reading), so a framing error fails here instead of losing epochs.

Usage: python3 read_tensorboard.py RUN_DIR...   (needs `pip install tensorboard`)
"""

import glob
import json
import os
import sys

from google.protobuf import json_format
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.tensorflow_stub import errors
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New
from tensorboard.plugins.hparams import plugin_data_pb2


def count_records(path):
    reader = PyRecordReader_New(path)
    n = 0
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return n
        n += 1


out = {}
for run in sys.argv[1:]:
    files = sorted(glob.glob(os.path.join(run, "events.out.tfevents.*")))
    records = sum(count_records(f) for f in files)
    ea = EventAccumulator(run, size_guidance={"scalars": 0})
    ea.Reload()
    scalars = {
        tag: [[e.step, e.value] for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]
    }
    hparams = {
        tag: json_format.MessageToDict(
            plugin_data_pb2.HParamsPluginData.FromString(content),
            preserving_proto_field_name=True,
        )
        for tag, content in ea.PluginTagToContent("hparams").items()
    }
    out[run] = {
        "files": len(files),
        "records": records,
        "file_version": ea.file_version,
        "scalars": scalars,
        "hparams": hparams,
    }
print(json.dumps(out))
