"""Knowledge distillation from a teacher into the recipe's model (the student) as a recipe stage.

The teacher is a saved Keras model, or a zoo model built for the same data and trained here with the
recipe's own ``train`` section. The student is trained against both the labels and the teacher:

* classification (logits):
  ``alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(p_teacher^T || p_student^T)``, where
  ``p^T`` is the softmax at temperature ``T`` (Hinton et al.; ``T^2`` keeps the gradient scale
  independent of ``T``);
* regression: ``alpha * MSE(labels, student) + (1 - alpha) * MSE(teacher, student)``.

``apply`` returns a :class:`Distiller` wrapping the student; ``strip`` returns the student itself, so
later stages prune, cluster and quantize it like any model; with ``guide_later_stages`` their
fine-tuning keeps the same loss against the teacher (:func:`guided`), so a distill stage with
``epochs: 0`` and the trained model as its own teacher makes compression self-distilled. It is off
by default: measured on digits_cnn (90% pruning) it cost accuracy, and on facepose_mlp the int8 file
fell short of the pruning target (the sparsity check caught it). Validation loss is the label
loss, so early stopping and the history compare with training the student alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeopt.data import CLASSIFICATION, Dataset
from edgeopt.errors import InputError
from edgeopt.kerasapi import keras, tf
from edgeopt.recipe import DistillStage
from edgeopt.techniques import StageContext


class Distiller(keras.Model):
    """Trains ``student`` on a label loss plus a loss towards ``teacher``'s outputs; predicts as the student.

    ``compile`` takes the usual ``optimizer``, ``loss`` (the label loss) and ``metrics`` (on the
    student's predictions), so any code that compiles and fits a model can train a Distiller.
    """

    def __init__(self, student, teacher, task: str, alpha: float, temperature: float):
        super().__init__(name="distiller")
        self.student = student
        # The teacher runs with training=False outside the gradient tape and only the student's
        # variables are updated; its `trainable` flag is left alone, since flipping it would change
        # the caller's model (a frozen model clones frozen, and TFMOT then finds nothing to cluster).
        self.teacher = teacher
        self.task = task
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.label_loss_tracker = keras.metrics.Mean(name="label_loss")
        self.teacher_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        self.total_loss_tracker = keras.metrics.Mean(name="loss")

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):  # noqa: D102
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.label_loss = loss

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def teacher_loss(self, teacher_out, student_out):
        """The distillation term (before the ``1 - alpha`` weight)."""
        if self.task == CLASSIFICATION:
            t = self.temperature
            p_teacher = tf.nn.softmax(teacher_out / t, axis=-1)
            log_p_teacher = tf.nn.log_softmax(teacher_out / t, axis=-1)
            log_p_student = tf.nn.log_softmax(student_out / t, axis=-1)
            kl = tf.reduce_sum(p_teacher * (log_p_teacher - log_p_student), axis=-1)
            return tf.reduce_mean(kl) * t * t
        return tf.reduce_mean(tf.square(teacher_out - student_out))

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.label_loss_tracker, self.teacher_loss_tracker,
                *self.compiled_metrics.metrics]

    def train_step(self, data):
        x, y = data
        teacher_out = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            student_out = self.student(x, training=True)
            label = self.label_loss(y, student_out)
            towards_teacher = self.teacher_loss(teacher_out, student_out)
            total = self.alpha * label + (1.0 - self.alpha) * towards_teacher
            if self.student.losses:  # L1/L2 penalties of the student's layers
                total += tf.add_n(self.student.losses)
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables, strict=True))
        return self._update(y, student_out, total, label, towards_teacher)

    def test_step(self, data):
        x, y = data
        student_out = self.student(x, training=False)
        label = self.label_loss(y, student_out)
        towards_teacher = self.teacher_loss(self.teacher(x, training=False), student_out)
        # Validation loss is the label loss alone, comparable with training the student without a teacher.
        return self._update(y, student_out, label, label, towards_teacher)

    def _update(self, y, student_out, total, label, towards_teacher):
        self.total_loss_tracker.update_state(total)
        self.label_loss_tracker.update_state(label)
        self.teacher_loss_tracker.update_state(towards_teacher)
        self.compiled_metrics.update_state(y, student_out)
        return {m.name: m.result() for m in self.metrics}


def guidance(stage: DistillStage, ctx: StageContext) -> dict | None:
    """What later stages need to keep training against the teacher (None: plain labels again)."""
    if not stage.guide_later_stages:
        return None
    return {"teacher": ctx.notes["teacher"], "task": ctx.data.task, "alpha": stage.alpha,
            "temperature": stage.temperature}


def guided(model, guide: dict | None):
    """``model`` (a later stage's wrapped model) inside a Distiller when a distill stage guides it.

    Compression fine-tuning then learns from the uncompressed teacher's outputs as well as the
    labels; ``strip`` of the stage still receives the stage's own wrapped model.
    """
    if guide is None:
        return model
    return Distiller(model, guide["teacher"], guide["task"], guide["alpha"], guide["temperature"])


def teacher_epochs(stage: DistillStage, ctx: StageContext) -> int:
    if stage.teacher_epochs is not None:
        return stage.teacher_epochs
    return ctx.train.epochs or stage.epochs


def load_teacher(stage: DistillStage, ctx: StageContext):
    """The teacher: a saved model, checked against the data, or a zoo model trained on the data."""
    from edgeopt.modelfile import load_keras_model
    from edgeopt.train import fit
    from edgeopt.zoo import ZOO, build

    data: Dataset = ctx.data
    where = f"stages[{ctx.stage_index}].teacher"
    if stage.teacher in ZOO:
        teacher = build(stage.teacher, data.input_shape, data.output_dim, **stage.teacher_options)
        history = fit(teacher, data, ctx.train, epochs=teacher_epochs(stage, ctx), seed=ctx.seed)
        ctx.notes["teacher_history"] = history
        return teacher
    path = Path(stage.teacher)
    if not path.exists():
        raise InputError(f"{where}: '{stage.teacher}' is neither a zoo model ({', '.join(ZOO)}) "
                         "nor an existing file")
    teacher = load_keras_model(path, trust=ctx.trust_model, where=where)
    if tuple(teacher.input_shape[1:]) != data.input_shape:
        raise InputError(f"{where}: {path} takes inputs of shape {tuple(teacher.input_shape[1:])} "
                         f"but the data has {data.input_shape}")
    if int(teacher.output_shape[-1]) != data.output_dim:
        raise InputError(f"{where}: {path} has {teacher.output_shape[-1]} outputs but the data needs "
                         f"{data.output_dim}")
    return teacher


def apply(model, stage: DistillStage, ctx: StageContext):
    """Wrap the student ``model`` with the teacher in a :class:`Distiller`."""
    teacher = load_teacher(stage, ctx)
    distiller = Distiller(model, teacher, ctx.data.task, stage.alpha, stage.temperature)
    ctx.notes["teacher"] = teacher
    ctx.notes["teacher_gap_before"] = teacher_gap(model, teacher, ctx.data, stage)
    return distiller


def callbacks(stage: DistillStage, ctx: StageContext) -> list:
    return []


def strip(model):
    return model.student if isinstance(model, Distiller) else model


def scope():
    return keras.utils.custom_object_scope({"Distiller": Distiller})


def teacher_gap(student, teacher, data: Dataset, stage: DistillStage) -> float:
    """The distillation term on the test split: how far the student's outputs are from the teacher's."""
    student_out = student.predict(data.x_test, batch_size=256, verbose=0)
    teacher_out = teacher.predict(data.x_test, batch_size=256, verbose=0)
    probe = Distiller.__new__(Distiller)  # only for teacher_loss: no layers are built
    probe.task, probe.temperature = data.task, float(stage.temperature)
    return float(Distiller.teacher_loss(probe, tf.constant(teacher_out), tf.constant(student_out)))


def _test_metric(model, data: Dataset) -> dict:
    out = np.asarray(model.predict(data.x_test, batch_size=256, verbose=0))
    if data.task == CLASSIFICATION:
        return {"accuracy": float(np.mean(out.argmax(axis=1) == data.y_test)), "provenance": "keras"}
    mae = float(np.mean(np.abs(out.reshape(data.y_test.shape) - data.y_test)))
    return {"mae": mae, "provenance": "keras"}


def report(stripped, stage: DistillStage, ctx: StageContext) -> dict:
    teacher = ctx.notes["teacher"]
    after = teacher_gap(stripped, teacher, ctx.data, stage)
    return {
        "achieved": {
            "teacher": stage.teacher,
            "teacher_params": int(teacher.count_params()),
            "student_params": int(stripped.count_params()),
            "teacher_test": _test_metric(teacher, ctx.data),
            "student_test": _test_metric(stripped, ctx.data),
            "teacher_gap_before": ctx.notes["teacher_gap_before"],
            "teacher_gap_after": after,
            "teacher_history": ctx.notes.get("teacher_history", {}),
        },
        "skipped_layers": {},
        "summary": f"student ({stripped.count_params():,} params) distilled from {stage.teacher} "
                   f"({teacher.count_params():,} params); distance to teacher on test "
                   f"{ctx.notes['teacher_gap_before']:.4g} -> {after:.4g}",
    }
