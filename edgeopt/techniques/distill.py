"""Knowledge distillation from a teacher into the recipe's model (the student) as a recipe stage.

The teacher is a saved Keras model, or a zoo model built for the same data and trained here with the
recipe's own ``train`` section. The student is trained against both the labels and the teacher:

* classification (logits):
  ``alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(p_teacher^T || p_student^T)``, where
  ``p^T`` is the softmax at temperature ``T`` (Hinton et al.; ``T^2`` keeps the gradient scale
  independent of ``T``);
* regression: ``alpha * MSE(labels, student) + (1 - alpha) * MSE(teacher, student)``.

``apply`` returns a ``Distiller`` (:func:`distiller_class`) wrapping the student; ``strip`` returns
the student itself, so later stages prune, cluster and quantize it like any model. It comes first:
it trains the student, which would undo any stage before it. With ``guide_later_stages`` the later
stages' fine-tuning keeps the same loss against the teacher (``guidance``), so a distill stage with
``epochs: 0`` and the trained model as its own teacher makes compression self-distilled. It is off
by default: measured on digits_cnn (90% pruning) it cost accuracy, and on facepose_mlp the int8 file
fell short of the pruning target (the sparsity check caught it). Validation loss is the label
loss, so early stopping and the history compare with training the student alone.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from edgeopt.dataset import CLASSIFICATION, Dataset
from edgeopt.errors import InputError
from edgeopt.modelfile import load_keras_model
from edgeopt.techniques.base import (
    MAX_EPOCHS,
    FineTune,
    Placement,
    StageContext,
    Technique,
    plain_options,
    stage_outcome,
)
from edgeopt.types import Check, StageOutcome, Variant
from edgeopt.zoo import ZOO, build

if TYPE_CHECKING:
    from edgeopt.trainspec import TrainSpec

# -- the stage --------------------------------------------------------------------------------------


class DistillStage(FineTune):
    kind: Literal["distill"] = "distill"
    teacher: str = Field(
        ...,
        description="zoo model name (trained by this recipe's train section) "
        "or a path to a saved Keras model",
    )
    teacher_options: dict[str, Any] = Field(default_factory=dict, description="zoo builder options")
    _plain_teacher_options = field_validator("teacher_options")(plain_options)
    alpha: float = Field(0.1, ge=0, le=1, description="weight of the label loss; 1 - alpha on the teacher")
    temperature: float = Field(4.0, gt=0, description="softmax temperature (classification)")
    guide_later_stages: bool = Field(False, description="the teacher keeps guiding the fine-tuning of "
                                     "the stages after this one (prune, cluster, QAT) with the same loss")
    teacher_epochs: int | None = Field(None, ge=0, le=MAX_EPOCHS, description="zoo teacher's training epochs "
                                       "(default: train.epochs, or this stage's epochs when that is 0)")


def teacher_epochs(stage: DistillStage, ctx: StageContext) -> int:
    if stage.teacher_epochs is not None:
        return stage.teacher_epochs
    return ctx.train.epochs or stage.epochs


@dataclass(frozen=True)
class TeacherGuide:
    """A teacher and the loss towards it: wraps a model in a ``Distiller`` for its fine-tune."""

    teacher: Any
    task: str
    alpha: float
    temperature: float

    def wrap(self, model):
        """``model`` inside a Distiller: it then learns from the teacher's outputs as well as the labels.

        ``strip`` of the stage that made ``model`` still receives ``model`` itself.
        """
        return distiller_class()(model, self.teacher, self.task, self.alpha, self.temperature)


# -- the technique ----------------------------------------------------------------------------------


class Distill(Technique):
    """Knowledge distillation: the student learns from a teacher's outputs as well as the labels."""

    kind = "distill"
    Stage = DistillStage
    placement = Placement(once=True, first=True, why="it trains the student")
    guided = False  # it is the guide: its own fine-tune already trains against the teacher

    def validate(self, stage: DistillStage, index: int, data: Dataset, train: TrainSpec) -> None:
        """Refuse a student with several inputs or outputs (its teacher's loss compares one output);
        a teacher file is checked with the recipe's other model files."""
        if len(data.input_names) > 1 or len(data.outputs) > 1:
            named = [f"{kind} {', '.join(names)}" for kind, names in
                     (("inputs", data.input_names), ("outputs", data.outputs)) if len(names) > 1]
            raise InputError(f"stages[{index}] distill: distillation takes a model with one input and one "
                             f"output (the teacher's loss compares one output), but data '{data.name}' has "
                             f"{' and '.join(named)}; leave the distill stage out for this model")

    def apply(self, model, stage: DistillStage, ctx: StageContext):
        """Wrap the student ``model`` with the teacher in a Distiller."""
        if ctx.data.task == CLASSIFICATION and int(model.output_shape[-1]) == 1:
            raise InputError(f"stages[{ctx.stage_index}] distill: the student has one output unit (a binary "
                             "head), and the teacher's loss compares softmax distributions over classes; "
                             "give the student two output units, or leave the distill stage out")
        teacher = load_teacher(stage, ctx)
        distiller = TeacherGuide(teacher, ctx.data.task, stage.alpha, stage.temperature).wrap(model)
        ctx.notes["teacher"] = teacher
        ctx.notes["teacher_gap_before"] = teacher_gap(model, teacher, ctx.data, stage)
        return distiller

    def callbacks(self, stage: DistillStage, ctx: StageContext) -> list:
        """None: the Distiller's own training step holds the teacher's loss."""
        return []

    def strip(self, model):
        """The student: the Distiller's teacher and losses are left behind."""
        return model.student if isinstance(model, distiller_class()) else model

    def scope(self):
        """The Distiller class, to load a saved Distiller."""
        from edgeopt.kerasapi import keras

        return keras.utils.custom_object_scope({"Distiller": distiller_class()})

    def outcome(self, stripped, stage: DistillStage, ctx: StageContext, history: dict) -> StageOutcome:
        """Teacher and student sizes and test figures, and the distance to the teacher before and after."""
        teacher = ctx.notes["teacher"]
        after = teacher_gap(stripped, teacher, ctx.data, stage)
        achieved = {
            "teacher": stage.teacher,
            "teacher_params": int(teacher.count_params()),
            "student_params": int(stripped.count_params()),
            "teacher_test": _test_metric(teacher, ctx.data),
            "student_test": _test_metric(stripped, ctx.data),
            "teacher_gap_before": ctx.notes["teacher_gap_before"],
            "teacher_gap_after": after,
            "teacher_history": ctx.notes.get("teacher_history", {}),
        }
        summary = (f"student ({stripped.count_params():,} params) distilled from {stage.teacher} "
                   f"({teacher.count_params():,} params); distance to teacher on test "
                   f"{ctx.notes['teacher_gap_before']:.4g} -> {after:.4g}")
        return stage_outcome(stage, history, achieved, {}, summary)

    def checks(self, outcome: StageOutcome, variants: Sequence[Variant]) -> list[Check]:
        """None: the student is evaluated on every export like any model."""
        return []

    def guidance(self, stage: DistillStage, ctx: StageContext) -> TeacherGuide | None:
        """With ``guide_later_stages``: the teacher, to keep guiding the later stages' fine-tuning."""
        if not stage.guide_later_stages:
            return None
        return TeacherGuide(ctx.notes["teacher"], ctx.data.task, stage.alpha, stage.temperature)

    def model_files(self, stage: DistillStage) -> tuple[tuple[str, str], ...]:
        """The teacher: a zoo name or a saved model."""
        return (("teacher", stage.teacher),)


TECHNIQUE = Distill()


# -- the Keras side (TensorFlow inside) --------------------------------------------------------------


def teacher_loss(teacher_out, student_out, task: str, temperature: float):
    """The distillation term (before the ``1 - alpha`` weight), as a TensorFlow scalar."""
    from edgeopt.kerasapi import tf

    if task == CLASSIFICATION:
        t = float(temperature)
        p_teacher = tf.nn.softmax(teacher_out / t, axis=-1)
        log_p_teacher = tf.nn.log_softmax(teacher_out / t, axis=-1)
        log_p_student = tf.nn.log_softmax(student_out / t, axis=-1)
        kl = tf.reduce_sum(p_teacher * (log_p_teacher - log_p_student), axis=-1)
        return tf.reduce_mean(kl) * t * t
    return tf.reduce_mean(tf.square(teacher_out - student_out))


@functools.cache
def distiller_class():
    """The ``Distiller`` Keras model class, built on first use (it subclasses ``keras.Model``)."""
    from edgeopt.kerasapi import keras, tf

    class Distiller(keras.Model):
        """Trains ``student`` on the labels and towards ``teacher``'s outputs; predicts as the student.

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
            return teacher_loss(teacher_out, student_out, self.task, self.temperature)

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

    return Distiller


def load_teacher(stage: DistillStage, ctx: StageContext):
    """The teacher: a saved model, checked against the data, or a zoo model trained on the data."""
    from edgeopt.train import fit

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


def teacher_gap(student, teacher, data: Dataset, stage: DistillStage) -> float:
    """The distillation term on the test split: how far the student's outputs are from the teacher's."""
    from edgeopt.kerasapi import tf

    student_out = student.predict(data.x_test, batch_size=256, verbose=0)
    teacher_out = teacher.predict(data.x_test, batch_size=256, verbose=0)
    gap = teacher_loss(tf.constant(teacher_out), tf.constant(student_out), data.task, stage.temperature)
    return float(gap)


def _test_metric(model, data: Dataset) -> dict:
    out = np.asarray(model.predict(data.x_test, batch_size=256, verbose=0))
    if data.task == CLASSIFICATION:
        return {"accuracy": float(np.mean(out.argmax(axis=1) == data.y_test)), "provenance": "keras"}
    mae = float(np.mean(np.abs(out.reshape(data.y_test.shape) - data.y_test)))
    return {"mae": mae, "provenance": "keras"}
