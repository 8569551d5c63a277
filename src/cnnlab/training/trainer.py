"""Lightning's Trainer, refusing at construction the values it would only trip on later.

Lightning accepts ``max_epochs="ten"`` or ``log_every_n_steps=-5`` and fails (or silently
does something odd) once training has started; here the arguments cnnlab's configs set
are typed and range-checked first, and the rest go to Lightning unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

import lightning as L
from pydantic import Field

from cnnlab.errors import Count, NonNegative, NonNegativeFloat, checked, require

Batches = Union[Annotated[int, Field(ge=0)], Annotated[float, Field(ge=0, le=1)]]
BATCHES = "null, a number of batches >= 0, or a fraction of the split in [0, 1]"


class Trainer(L.Trainer):
    @checked
    def __init__(
        self,
        *,
        accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto",
        max_epochs: Count = 10,
        min_epochs: NonNegative = 1,
        check_val_every_n_epoch: Count = 1,
        log_every_n_steps: Count = 50,
        num_sanity_val_steps: Annotated[
            int, Field(ge=-1, description="an integer >= -1 (-1: the whole validation split)")
        ] = 1,
        gradient_clip_val: Optional[NonNegativeFloat] = None,
        limit_train_batches: Annotated[Optional[Batches], Field(description=BATCHES)] = None,
        limit_val_batches: Annotated[Optional[Batches], Field(description=BATCHES)] = None,
        limit_test_batches: Annotated[Optional[Batches], Field(description=BATCHES)] = None,
        deterministic: Annotated[
            Union[bool, Literal["warn"]], Field(description="true, false or 'warn'")
        ] = "warn",
        benchmark: Optional[bool] = None,
        **kwargs: Any,
    ) -> None:
        require(
            "min_epochs",
            min_epochs,
            lambda v: v <= max_epochs,
            f"at most trainer.max_epochs ({max_epochs})",
        )
        super().__init__(
            accelerator=accelerator,
            max_epochs=max_epochs,
            min_epochs=min_epochs,
            check_val_every_n_epoch=check_val_every_n_epoch,
            log_every_n_steps=log_every_n_steps,
            num_sanity_val_steps=num_sanity_val_steps,
            gradient_clip_val=gradient_clip_val,
            limit_train_batches=limit_train_batches,
            limit_val_batches=limit_val_batches,
            limit_test_batches=limit_test_batches,
            deterministic=deterministic,
            benchmark=benchmark,
            **kwargs,
        )
