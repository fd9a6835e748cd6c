"""``edgeopt tune``: a budgeted search over compression settings on one shared trained base.

:mod:`space` (the searched fields), :mod:`budgets` (limits and objectives), :mod:`samplers`
(random, hill climbing, Gaussian-process Bayesian optimisation, Optuna's TPE and NSGA-II),
:mod:`trial` (one trial in a worker), :mod:`executors` (here, a process pool, Ray), :mod:`study`
(the resumable driver), :mod:`results` and :mod:`html` (the outcome). Importing this package
loads no TensorFlow.
"""
