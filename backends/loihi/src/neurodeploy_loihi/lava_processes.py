"""Lava processes that Lava itself lacks: the subtractive-reset LIF (the integrate-and-fire neuron of ANN-to-SNN
conversion), and a recorder of a neuron population's spikes, u and v. The only module of the package that
imports Lava at module level; import it only where Lava is installed (``pip install 'neurodeploy-loihi[lava]'``,
Python 3.10).

Lava's LIF resets v to 0 after a spike (``AbstractPyLifModelFixed.reset_voltage``: ``self.v[s] = 0``), which
throws away the charge above the threshold. :class:`SubtractiveLIF` keeps it. Its bit-accurate model,
:class:`PySubtractiveLifModelBitAcc`, *is* Lava's ``PyLifModelBitAcc`` (it subclasses
``lava.proc.lif.models.AbstractPyLifModelFixed`` and reuses its ``scale_bias`` and ``subthr_dynamics``):

* u, v: int32 holding 24-bit values; u decays by (du + 1) / 4096 and wraps (a single fold by 2**24), v decays
  by dv / 4096, adds u and bias_mant << bias_exp, and saturates at +-(2**23 - 1) (the LIF's ``subthr_dynamics``);
* the comparison is the LIF's: spike when v > vth << 6 (strict ``>``; vth a 17-bit mantissa);
* the differences are the reset, ``v -= vth << 6`` where the neuron spiked instead of ``v = 0``, and
  ``bias_start`` (the bias is zero up to that step; 0, the default, is the LIF's behaviour). Because
  v > vth << 6 >= 0 there, the result is in [1, 2**23 - 1]: it needs no wrap and no saturation. u is not reset.

The initial v is the process's ``v`` argument, as for Lava's LIF (a scalar or one value per neuron).
:mod:`neurodeploy_loihi.fixed_point` states the same arithmetic in numpy.
"""

from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort, RefPort
from lava.magma.core.process.process import AbstractProcess, LogConfig
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed
from lava.proc.lif.process import AbstractLIF


class SubtractiveLIF(AbstractLIF):
    """LIF neurons that reset by subtracting the threshold (v -= vth after a spike) instead of to zero.

    Same parameters as ``lava.proc.lif.process.LIF``: shape, u, v (initial values), du, dv, bias_mant, bias_exp,
    vth (in the fixed-point model, a 17-bit mantissa compared as vth << 6), and ``bias_start``: the bias is added
    from step bias_start + 1 on (0: from the first step, as the LIF), so that a population deep in the pipeline
    starts integrating its bias with its first input."""

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        u: float | list | np.ndarray = 0,
        v: float | list | np.ndarray = 0,
        du: float = 0,
        dv: float = 0,
        bias_mant: float | list | np.ndarray = 0,
        bias_exp: float | list | np.ndarray = 0,
        vth: float = 10,
        bias_start: int = 0,
        name: str | None = None,
        log_config: LogConfig | None = None,
        **kwargs: ty.Any,
    ) -> None:
        super().__init__(
            shape=shape,
            u=u,
            v=v,
            du=du,
            dv=dv,
            bias_mant=bias_mant,
            bias_exp=bias_exp,
            name=name,
            log_config=log_config,
            **kwargs,
        )
        self.vth = Var(shape=(1,), init=vth)
        self.bias_start = Var(shape=(1,), init=bias_start)


@implements(proc=SubtractiveLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PySubtractiveLifModelBitAcc(AbstractPyLifModelFixed):
    """Bit-accurate SubtractiveLIF: ``PyLifModelBitAcc`` with ``v -= vth << 6`` as the reset.

    Types and widths as ``PyLifModelBitAcc``: a_in int16 (precision 16, not enforced: it arrives as int32),
    u and v int32 (precision 24), du and dv uint16 (precision 12), bias_mant int16 (precision 13), bias_exp int16
    (precision 3), vth int32 (precision 17), s_out int32 (precision 24)."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: int = LavaPyType(int, np.int32, precision=17)
    bias_start: int = LavaPyType(int, np.int32, precision=16)

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.effective_vth = 0

    def scale_threshold(self) -> None:
        """vth << 6, as ``PyLifModelBitAcc.scale_threshold`` (MSB alignment with the 24-bit v)."""
        self.effective_vth = np.left_shift(self.vth, self.vth_shift)
        self.isthrscaled = True

    def scale_bias(self) -> None:
        """The LIF's ``bias_mant << bias_exp`` (``run_spk`` calls it every step), zero up to step ``bias_start``."""
        super().scale_bias()
        if self.time_step <= int(np.asarray(self.bias_start).reshape(-1)[0]):
            self.effective_bias = np.zeros_like(self.effective_bias)

    def spiking_activation(self) -> np.ndarray:
        """Spike when v exceeds the threshold (strict ``>``, as ``PyLifModelBitAcc``)."""
        return self.v > self.effective_vth

    def reset_voltage(self, spike_vector: np.ndarray) -> None:
        """Subtract the threshold from v where the neuron spiked (v > vth << 6 >= 0 there, so v stays in
        [1, 2**23 - 1]); u is left alone, as in the LIF."""
        self.v[spike_vector] -= self.effective_vth


class Recorder(AbstractProcess):
    """Records one neuron population every step: its spikes (from ``s_out``, in the spiking phase) and its u
    and v (read through RefPorts in the management phase after the step, as ``lava.proc.monitor.Monitor``
    does), into ``record`` (3, steps, *shape): spikes, u, v. One process instead of Lava's three Monitors (a
    Monitor holds one probe), int32 instead of the Monitor's float, and one ``get`` to read it all.

    ``path``: the model also saves ``record`` there (``np.save``) after the last step. Lava's ``Var.get`` sends an
    array to the host one element at a time (``PyLoihiProcessModel._get_var``), minutes for the millions of
    values of a convolutional network's trace; reading the file takes milliseconds.

    ``link`` sends zeros every step. Lava runs only the processes connected to the one it is started from;
    connecting the ``link`` of every recorder to one shared sink joins independent networks into one run."""

    def __init__(self, *, shape: tuple[int, ...], steps: int, path: str | None = None, name: str | None = None) -> None:
        super().__init__(shape=shape, steps=steps, path=path, name=name)
        self.s_in = InPort(shape=shape)
        self.u_ref = RefPort(shape=shape)
        self.v_ref = RefPort(shape=shape)
        self.link = OutPort(shape=(1,))
        self.record = Var(shape=(3, steps, *shape), init=0)

    def watch(self, neurons: AbstractLIF, u: str = "u", v: str = "v") -> None:
        """Record ``neurons`` (a LIF, SubtractiveLIF or GradedReLU of this recorder's shape; other neurons name
        the two variables recorded as u and v, e.g. a SigmaDelta's ``sigma`` and ``act``)."""
        neurons.s_out.connect(self.s_in)
        self.u_ref.connect_var(getattr(neurons, u))
        self.v_ref.connect_var(getattr(neurons, v))


@implements(proc=Recorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRecorderModel(PyLoihiProcessModel):
    """Stores step t's spikes, u and v at ``record[:, t - 1]``."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    u_ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32)
    v_ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32)
    link: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
    record: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def run_spk(self) -> None:
        self.record[0, self.time_step - 1] = self.s_in.recv()
        self.link.send(np.zeros((1,), np.int32))

    def post_guard(self) -> bool:
        return True

    def run_post_mgmt(self) -> None:
        self.record[1, self.time_step - 1] = self.u_ref.read()
        self.record[2, self.time_step - 1] = self.v_ref.read()
        path = self.proc_params.get("path")
        if path is not None and self.time_step == self.record.shape[1]:  # the last step: hand the record over
            np.save(path, self.record)


class GradedReLU(AbstractProcess):
    """Graded-spike neurons for graded mode (:mod:`neurodeploy_loihi.graded`), memoryless from step to step:

    ```
    u = a_in                                          the synaptic message (int32)
    v = clip(u + (bias_mant << bias_exp), -(2**23 - 1), 2**23 - 1)      24-bit saturation, as the LIF's v
    s_out = clip(v >> shift, 0, top)                  relu = 1: arithmetic shift (floors), ReLU, saturate
    s_out = v                                         relu = 0: identity (a readout)
    ```

    s_out is the graded spike's payload (for a Dense or Conv with ``num_message_bits > 0``), sent every step.
    ``bias_mant`` (13-bit signed) and ``bias_exp`` (3-bit unsigned) are scalars or one per neuron; ``shift``
    0..23; ``message_bits`` 1..24; top = ``levels`` where > 0 (a QCFS staircase's L), else 2**message_bits - 1."""

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        bias_mant: int | np.ndarray = 0,
        bias_exp: int | np.ndarray = 0,
        shift: int = 0,
        message_bits: int = 8,
        relu: bool = True,
        levels: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(shape=shape, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.bias_mant = Var(shape=shape, init=bias_mant)
        self.bias_exp = Var(shape=shape, init=bias_exp)
        self.shift = Var(shape=(1,), init=shift)
        self.message_bits = Var(shape=(1,), init=message_bits)
        self.relu = Var(shape=(1,), init=int(relu))
        self.levels = Var(shape=(1,), init=levels)


@implements(proc=GradedReLU, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyGradedReLUModelFixed(PyLoihiProcessModel):
    """Bit-accurate GradedReLU. a_in int32 (a Dense message is int32, a Conv's wrapped to 24 bits), u and v int32
    holding 24-bit values, s_out int32 with ``precision=24`` (the payload), bias_mant int16 (precision 13),
    bias_exp int16 (precision 3), shift and message_bits int32 (precision 5), relu (precision 1), levels int32
    (precision 24)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int16, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int16, precision=3)
    shift: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=5)
    message_bits: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=5)
    relu: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    levels: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def run_spk(self) -> None:
        a_in = self.a_in.recv().astype(np.int64)  # int64: the bias is added without an int32 overflow
        bias = np.left_shift(self.bias_mant.astype(np.int64), self.bias_exp.astype(np.int64))  # mant * 2**exp
        limit = (1 << 23) - 1
        v = np.clip(a_in + bias, -limit, limit)  # saturate to 24 bits
        if self.relu.item():
            top = int(self.levels.item()) or (1 << int(self.message_bits.item())) - 1
            s = np.clip(np.right_shift(v, int(self.shift.item())), 0, top)  # floor, ReLU, saturate to the payload
        else:
            s = v
        self.u[:] = a_in
        self.v[:] = v
        self.s_out.send(s)


class GradedFewSpike(AbstractProcess):
    """Few-spike neurons for graded mode (:func:`neurodeploy_loihi.graded.fs_step`): a K-step window integrates
    v, the next window sends its value as at most K graded spikes. Per step, at the population's local step
    l = time_step - ``depth`` (the Loihi steps its input takes to arrive), j = (l - 1) mod K:

    ```
    u = a_in;   v = clip(u + (bias_mant << bias_exp), -(2**23 - 1), 2**23 - 1)
    live = l - 1 - j - K >= start   (the window being sent was summed from step start on)
    z = live and rest >= thresholds[j];   rest = rest - z * resets[j];   s_out = z * payloads[j]
    window = window + v
    at j = K - 1:  rest = window if l - K >= start else 0;   window = 0
    ```

    Not a Loihi 2 neuron model: on the chip it needs microcode (a custom neuron program), so this process runs in
    Lava's CPU simulation only."""

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        thresholds: tuple[int, ...],
        resets: tuple[int, ...],
        payloads: tuple[int, ...],
        start: int = 0,
        depth: int = 0,
        bias_mant: int | np.ndarray = 0,
        bias_exp: int | np.ndarray = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(shape=shape, name=name)
        steps = len(thresholds)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.window = Var(shape=shape, init=0)
        self.rest = Var(shape=shape, init=0)
        self.bias_mant = Var(shape=shape, init=bias_mant)
        self.bias_exp = Var(shape=shape, init=bias_exp)
        self.thresholds = Var(shape=(steps,), init=np.asarray(thresholds))
        self.resets = Var(shape=(steps,), init=np.asarray(resets))
        self.payloads = Var(shape=(steps,), init=np.asarray(payloads))
        self.send_from = Var(shape=(1,), init=start)  # (not `start`: a process model's method)
        self.depth = Var(shape=(1,), init=depth)


@implements(proc=GradedFewSpike, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyGradedFewSpikeModelFixed(PyLoihiProcessModel):
    """Fixed-point GradedFewSpike: u and v int32 holding 24-bit values, window and rest int32, the code int32,
    s_out int32 with ``precision=24`` (the payload)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    window: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=32)
    rest: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=32)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int16, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int16, precision=3)
    thresholds: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=32)
    resets: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=32)
    payloads: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    send_from: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=32)
    depth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=32)

    def run_spk(self) -> None:
        a_in = self.a_in.recv().astype(np.int64)
        bias = np.left_shift(self.bias_mant.astype(np.int64), self.bias_exp.astype(np.int64))
        limit = (1 << 23) - 1
        v = np.clip(a_in + bias, -limit, limit)
        steps = len(self.thresholds)
        local = int(self.time_step) - int(self.depth.item())
        j = (local - 1) % steps
        rest = self.rest.astype(np.int64)
        live = local - 1 - j - steps >= int(self.send_from.item())
        fire = (rest >= int(self.thresholds[j])) & live
        rest = rest - fire * int(self.resets[j])
        window = self.window.astype(np.int64) + v
        if j == steps - 1:
            rest = window if local - steps >= int(self.send_from.item()) else np.zeros_like(window)
            window = np.zeros_like(window)
        self.u[:] = a_in
        self.v[:] = v
        self.window[:] = window
        self.rest[:] = rest
        self.s_out.send(fire * int(self.payloads[j]))
