"""Offline model tooling: ``edgeportrait model build`` and what it is made of.

Not part of the runtime: ``run``, ``process`` and ``segment`` never import it
(tests/test_startup.py and tests/test_import_graph.py check that). It ships in
the same distribution, so ``edgeportrait model build`` works from an installed
package; most of it needs the ``build`` extra (nncf, tflite, tqdm).

* :mod:`~edgeportrait_build.build` — the command: fetch the pinned mediapipe wheel,
  convert, make the data set, quantize, measure, write ``models/README.md``;
* :mod:`~edgeportrait_build.pinned` — the wheel and .tflite files it starts from;
* :mod:`~edgeportrait_build.tflite_ext` — the TFLite front-end extension for
  MediaPipe's custom op;
* :mod:`~edgeportrait_build.dataset` — the calibration/validation/held-out data set
  (``python -m edgeportrait_build.dataset fetch DIR``);
* :mod:`~edgeportrait_build.reference_masks` — the reference runtime's masks, run
  inside a mediapipe virtual environment;
* :mod:`~edgeportrait_build.agreement` — mask agreement with the reference, per scene class;
* :mod:`~edgeportrait_build.report` — the figures and ``models/README.md``.
"""
