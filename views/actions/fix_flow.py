"""The fix flow: drive a shown fix dialog from preview to result, with no nested event loop.

:func:`run_fix` awaits futures fed by the dialog's signals (:func:`signal_future`,
:func:`dialog_result`) instead of ``exec()``; the adapter plans and executes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QDialog

from services.actions.model import ActionRequest, ActionResult
from views.action_adapter import ActionAdapter
from views.actions.fix_dialog import FixDialog, plan_calls
from views.actions.wording import kind_title


def signal_future(signal: SignalInstance) -> asyncio.Future[Any]:
    """A future set by the next emission of ``signal`` (its first argument, or ``None``)."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def slot(*args: Any) -> None:
        if not future.done():
            future.set_result(args[0] if args else None)

    signal.connect(slot)

    def disconnect(_: asyncio.Future[Any]) -> None:
        with contextlib.suppress(RuntimeError, RuntimeWarning, TypeError):
            signal.disconnect(slot)

    future.add_done_callback(disconnect)
    return future


def dialog_result(dialog: QDialog) -> asyncio.Future[int]:
    """A future set when ``dialog`` finishes (its result code): await it instead of ``exec()``."""
    return signal_future(dialog.finished)


async def run_fix(adapter: ActionAdapter, dialog: FixDialog) -> ActionResult | None:
    """Drive a shown :class:`FixDialog`: preview on every edit, and on Confirm re-run the
    preflight, execute if the preview is unchanged, and show the result. Returns the result,
    or ``None`` when the operator closed the dialog without confirming. No nested event loop:
    it awaits futures fed by the dialog's signals. When the ERP stopped at a warning, the dialog
    offers to acknowledge it and the flow waits for a second confirmation."""
    preview_name = f"fix-preview:{dialog.exception.id}:{id(dialog)}"

    async def preview(request: ActionRequest) -> None:
        dialog.set_planning()
        try:
            plan = await adapter.plan(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            dialog.set_error(f"The preflight could not run: {exc}")
            return
        if dialog.state not in ("busy", "done"):
            dialog.set_plan(plan)

    def replan(request: ActionRequest) -> None:
        adapter.tasks.start(preview_name, preview(request))

    closed = dialog_result(dialog)
    dialog.request_changed.connect(replan)
    confirm: asyncio.Future[Any] | None = None
    last: ActionResult | None = None
    try:
        if dialog.allowed and dialog.request_complete():
            replan(dialog.request())
        while True:
            confirm = signal_future(dialog.confirmed)
            await asyncio.wait({confirm, closed}, return_when=asyncio.FIRST_COMPLETED)
            if closed.done() or not confirm.done():
                return last
            request: ActionRequest = confirm.result()
            adapter.tasks.cancel(preview_name)
            dialog.set_busy("Running the preflight checks again…")
            try:
                plan = await adapter.plan(request)
            except Exception as exc:
                dialog.set_error(f"The preflight could not run: {exc}")
                continue
            if not plan.ok:
                dialog.set_idle()
                dialog.set_plan(plan, "The preflight failed when checked again just before writing.")
                continue
            if plan_calls(plan) != dialog.shown_calls():
                dialog.set_idle()
                dialog.set_plan(plan, "The preview changed since you reviewed it: review it and confirm again.")
                continue
            dialog.set_busy(f"{kind_title(dialog.kind)}: writing and verifying…")
            task = adapter.start_execute(plan)
            try:
                # shielded: the write goes on if this flow is cancelled (the outbox records it)
                result: ActionResult = await asyncio.shield(task)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                dialog.set_error(f"The action could not run: {exc}")
                continue
            finally:
                if dialog.state == "busy":  # UI state restored whatever happened
                    dialog.set_idle()
            dialog.show_result(result)
            last = result
            if not dialog.awaiting_acknowledgement:
                return result
            # the ERP asked for a confirmation: wait for "acknowledge" + confirm, or for close
    finally:
        adapter.tasks.cancel(preview_name)
        if confirm is not None and not confirm.done():
            confirm.cancel()
        if not closed.done():
            closed.cancel()
        with contextlib.suppress(RuntimeError, RuntimeWarning, TypeError):
            dialog.request_changed.disconnect(replan)
