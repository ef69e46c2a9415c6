"""Training jobs under the SageMaker container contract (:mod:`mesp.jobs.contract`).

* :mod:`mesp.jobs.cluster` - windows, idle rule, K-Shape, router, catalogue, window assignment;
* :mod:`mesp.jobs.expert` - one cluster's (or the dense model's) search and ONNX export;
* :mod:`mesp.jobs.launch` - CreateTrainingJob requests, the run's steps, the optional SDK path.

``python -m mesp.jobs train`` is the image's entry point: it runs the job named by the ``job``
hyperparameter. Importing this package is cheap; torch and friends load inside the jobs.
"""
