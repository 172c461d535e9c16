/*
 * Reference for neurodeploy_pynn.spinnaker_emulator: sPyNNaker 1!7.4.1's IF_curr_exp / IF_curr_delta tick,
 * written on GCC's ISO/IEC TR 18037 fixed-point types the way sPyNNaker's C is (REAL = accum, s16.15;
 * decay_t = unsigned long fract, u0.32), to be compiled for ARM in ARM mode (-marm) and run under qemu-arm.
 * The accum multiplies, adds and compares are GCC's; nothing here re-implements them on integers.
 *
 * The chip-side constants are computed here as neuron_model_initialise, decay_and_init and
 * input_type_initialise do, except the two that call spinn_common's exponentials (exp_TC = expk(-ts/tau_m),
 * decay = expulr(-ts/tau_syn)): those arrive as raw bits.
 *
 * Input (stdin), whitespace-separated decimal integers:
 *   B T
 *   NI  size[0] .. size[NI-1]                          spike-source inputs
 *   NP, then per population:
 *     model (0 = IF_curr_exp, 1 = IF_curr_delta)  size  shift_exc  shift_inh
 *     per neuron, raw bits: v_init refract_timer_init isyn_exc isyn_inh v_rest v_reset v_thresh i_offset
 *                           time_step tau_m c_m T_refract_ms tau_syn_E tau_syn_I exp_TC decay_exc decay_inh
 *   NQ, then per projection:
 *     pre_is_population pre_index post_index receptor (0 = excitatory, 1 = inhibitory) delay
 *     n_pre x n_post 16-bit words, row-major
 *   spikes: for each sample, tick, input, source: 0 or 1
 * Output (stdout), decimal integers:
 *   per population, neuron: ts R_membrane T_refract init_exc init_inh scale_factor
 *   per sample, tick, population, neuron: spike V (V before the tick's update, as recorded)
 *   per sample, population, neuron: V refract_timer isyn_exc isyn_inh (after the last tick)
 */
#include <stdbool.h>
#include <stdfix.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#if ACCUM_FBIT != 15 || ACCUM_IBIT != 16
#error "accum must be s16.15 (an ARM target)"
#endif

typedef accum REAL;
typedef REAL input_t;
typedef REAL state_t;
typedef unsigned long fract UFRACT;
typedef UFRACT decay_t;
typedef uint16_t weight_t;

#define ONE 1.0000k
#define ZERO 0.0000k

#define MAX_POPS 8
#define MAX_INPUTS 8
#define MAX_N 64
#define MAX_PROJ 32
#define MAX_T 1024
#define MAX_B 16
#define RB_SLOTS 64 /* a power of two above the largest delay */

static inline int32_t bitsk(accum k) {
    union { accum k; int32_t i; } u;
    u.k = k;
    return u.i;
}
static inline accum kbits(int32_t i) {
    union { accum k; int32_t i; } u;
    u.i = i;
    return u.k;
}
static inline uint32_t bitsulr(unsigned long fract f) {
    union { unsigned long fract f; uint32_t u; } v;
    v.f = f;
    return v.u;
}
static inline unsigned long fract ulrbits(uint32_t u) {
    union { unsigned long fract f; uint32_t u; } v;
    v.u = u;
    return v.f;
}

/* common/maths-util.h */
static inline REAL kdivk(REAL a, REAL b) {
    return kbits((uint32_t) (((uint64_t) bitsk(a) << 15) / (uint64_t) bitsk(b)));
}
static inline REAL kdivui(REAL a, uint32_t b) {
    return kbits((uint32_t) ((uint64_t) bitsk(a) / (uint64_t) b));
}

/* neuron/decay.h */
static inline REAL decay_s1615(REAL x, decay_t decay) {
    int64_t s = (int64_t) bitsk(x);
    int64_t u = (int64_t) bitsulr(decay);
    return kbits((int32_t) ((s * u) >> 32));
}
static inline decay_t decay_s1615_to_u032(REAL x, decay_t decay) {
    uint64_t s = (uint64_t) bitsk(x);
    uint64_t u = (uint64_t) bitsulr(decay);
    return ulrbits((uint32_t) ((s * u) >> 15));
}

/* neuron/models/neuron_model_lif_impl.h */
typedef struct {
    REAL V_membrane;
    REAL V_rest;
    REAL R_membrane;
    REAL exp_TC;
    REAL I_offset;
    int32_t refract_timer;
    REAL V_reset;
    int32_t T_refract;
} neuron_t;

static inline int32_t lif_ceil_accum(REAL value) {
    int32_t bits = bitsk(value);
    int32_t integer = bits >> 15;
    int32_t fraction = bits & 0x7FFF;
    if (fraction > 0) {
        return integer + 1;
    }
    return integer;
}

static inline void lif_neuron_closed_form(neuron_t *neuron, REAL V_prev, input_t input_this_timestep) {
    REAL alpha = input_this_timestep * neuron->R_membrane + neuron->V_rest;
    neuron->V_membrane = alpha - (neuron->exp_TC * (alpha - V_prev));
}

static inline state_t neuron_model_state_update(input_t exc, input_t inh, input_t external_bias,
                                                REAL current_offset, neuron_t *neuron) {
    if (neuron->refract_timer <= 0) {
        REAL total_exc = ZERO;
        REAL total_inh = ZERO;
        total_exc += exc;
        total_inh += inh;
        input_t input_this_timestep = total_exc - total_inh + external_bias + neuron->I_offset + current_offset;
        lif_neuron_closed_form(neuron, neuron->V_membrane, input_this_timestep);
    } else {
        neuron->refract_timer--;
    }
    return neuron->V_membrane;
}

static inline void neuron_model_has_spiked(neuron_t *neuron) {
    neuron->V_membrane = neuron->V_reset;
    neuron->refract_timer = neuron->T_refract;
}

/* neuron/synapse_types/exp_synapse_utils.h */
typedef struct {
    decay_t decay;
    decay_t init;
    input_t synaptic_input_value;
} exp_state_t;

static inline void exp_shaping(exp_state_t *p) {
    p->synaptic_input_value = decay_s1615(p->synaptic_input_value, p->decay);
}
static inline void add_input_exp(exp_state_t *p, input_t input) {
    p->synaptic_input_value = p->synaptic_input_value + decay_s1615(input, p->init);
}

/* neuron/synapse_row.h */
static inline input_t synapse_row_convert_weight_to_input(weight_t weight, uint32_t left_shift) {
    union { int32_t input_type; accum output_type; } converter;
    converter.input_type = (int32_t) (weight) << left_shift;
    return converter.output_type;
}

typedef struct {
    int model; /* 0 exp, 1 delta */
    int size;
    uint32_t shift[2];
    neuron_t neuron[MAX_N];
    REAL threshold[MAX_N];
    exp_state_t exp_syn[MAX_N][2];
    input_t delta_syn[MAX_N][2];
    REAL scale_factor[MAX_N];
    /* the loaded values, to restart every sample */
    neuron_t neuron0[MAX_N];
    input_t isyn0[MAX_N][2];
    REAL ts[MAX_N];
} population_t;

typedef struct {
    int pre_is_pop, pre, post, receptor, delay;
    weight_t *words;
} projection_t;

static population_t pops[MAX_POPS];
static projection_t projs[MAX_PROJ];
static int input_size[MAX_INPUTS];
static weight_t ring[MAX_POPS][2][RB_SLOTS][MAX_N];
static uint8_t *spikes_in;
static int B, T, NI, NP, NQ;

static long long next_int(long long lo, long long hi, const char *what) {
    long long v;
    if (scanf("%lld", &v) != 1) {
        fprintf(stderr, "lif_ref: cannot read %s\n", what);
        exit(2);
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "lif_ref: %s = %lld outside [%lld, %lld]\n", what, v, lo, hi);
        exit(2);
    }
    return v;
}

#define I32 (-2147483648LL), 2147483647LL
#define U32 0LL, 4294967295LL

static void read_network(void) {
    B = (int) next_int(1, MAX_B, "B");
    T = (int) next_int(0, MAX_T, "T");
    NI = (int) next_int(0, MAX_INPUTS, "NI");
    for (int i = 0; i < NI; i++) {
        input_size[i] = (int) next_int(1, MAX_N, "input size");
    }
    NP = (int) next_int(1, MAX_POPS, "NP");
    for (int p = 0; p < NP; p++) {
        population_t *pop = &pops[p];
        pop->model = (int) next_int(0, 1, "model");
        pop->size = (int) next_int(1, MAX_N, "size");
        pop->shift[0] = (uint32_t) next_int(0, 31, "shift_exc");
        pop->shift[1] = (uint32_t) next_int(0, 31, "shift_inh");
        for (int i = 0; i < pop->size; i++) {
            neuron_t *n = &pop->neuron0[i];
            n->V_membrane = kbits((int32_t) next_int(I32, "v_init"));
            n->refract_timer = (int32_t) next_int(I32, "refract_timer");
            pop->isyn0[i][0] = kbits((int32_t) next_int(I32, "isyn_exc"));
            pop->isyn0[i][1] = kbits((int32_t) next_int(I32, "isyn_inh"));
            n->V_rest = kbits((int32_t) next_int(I32, "v_rest"));
            n->V_reset = kbits((int32_t) next_int(I32, "v_reset"));
            pop->threshold[i] = kbits((int32_t) next_int(I32, "v_thresh"));
            n->I_offset = kbits((int32_t) next_int(I32, "i_offset"));
            REAL time_step = kbits((int32_t) next_int(1, 2147483647LL, "time_step"));
            REAL tau_m = kbits((int32_t) next_int(I32, "tau_m"));
            REAL c_m = kbits((int32_t) next_int(1, 2147483647LL, "c_m"));
            REAL T_refract_ms = kbits((int32_t) next_int(I32, "T_refract_ms"));
            REAL tau[2];
            tau[0] = kbits((int32_t) next_int(I32, "tau_syn_E"));
            tau[1] = kbits((int32_t) next_int(I32, "tau_syn_I"));
            n->exp_TC = kbits((int32_t) next_int(I32, "exp_TC"));
            decay_t decay[2];
            decay[0] = ulrbits((uint32_t) next_int(U32, "decay_exc"));
            decay[1] = ulrbits((uint32_t) next_int(U32, "decay_inh"));

            /* neuron_model_initialise, n_steps_per_timestep = 1 */
            REAL ts = kdivui(time_step, 1);
            pop->ts[i] = ts;
            n->R_membrane = kdivk(tau_m, c_m);
            n->T_refract = lif_ceil_accum(kdivk(T_refract_ms, ts));
            /* decay_and_init */
            for (int r = 0; r < 2; r++) {
                pop->exp_syn[i][r].decay = decay[r];
                pop->exp_syn[i][r].init = 0;
                if (pop->model == 0) {
                    decay_t inv_decay = 1.0ulr - decay[r];
                    REAL tau_over_ts = kdivk(tau[r], ts);
                    pop->exp_syn[i][r].init = decay_s1615_to_u032(tau_over_ts, inv_decay);
                }
            }
            /* input_type_initialise (delta) */
            pop->scale_factor[i] = kdivk(1.0, kdivui(time_step, 1));
        }
    }
    NQ = (int) next_int(0, MAX_PROJ, "NQ");
    for (int q = 0; q < NQ; q++) {
        projection_t *pr = &projs[q];
        pr->pre_is_pop = (int) next_int(0, 1, "pre_is_population");
        pr->pre = (int) next_int(0, (pr->pre_is_pop ? NP : NI) - 1, "pre");
        pr->post = (int) next_int(0, NP - 1, "post");
        pr->receptor = (int) next_int(0, 1, "receptor");
        pr->delay = (int) next_int(1, RB_SLOTS - 1, "delay");
        int n_pre = pr->pre_is_pop ? pops[pr->pre].size : input_size[pr->pre];
        int n_post = pops[pr->post].size;
        pr->words = malloc(sizeof(weight_t) * (size_t) n_pre * (size_t) n_post);
        for (int k = 0; k < n_pre * n_post; k++) {
            pr->words[k] = (weight_t) next_int(0, 65535, "word");
        }
    }
    int per_tick = 0;
    for (int i = 0; i < NI; i++) {
        per_tick += input_size[i];
    }
    spikes_in = malloc((size_t) B * (size_t) T * (size_t) per_tick + 1);
    for (long k = 0; k < (long) B * T * per_tick; k++) {
        spikes_in[k] = (uint8_t) next_int(0, 1, "spike");
    }
}

/* process_fixed_synapses: one synaptic word into the ring buffer, saturating the 16-bit slot */
static inline void add_to_ring(int post, int receptor, uint32_t slot_time, int j, weight_t weight) {
    weight_t *cell = &ring[post][receptor][slot_time & (RB_SLOTS - 1)][j];
    uint32_t accumulation = *cell + weight;
    uint32_t sat_test = accumulation & 0x10000;
    if (sat_test) {
        accumulation = sat_test - 1;
    }
    *cell = (weight_t) accumulation;
}

static void send_spike(int p, int i, uint32_t time) {
    for (int q = 0; q < NQ; q++) {
        projection_t *pr = &projs[q];
        if (!pr->pre_is_pop || pr->pre != p) {
            continue;
        }
        int n_post = pops[pr->post].size;
        for (int j = 0; j < n_post; j++) {
            add_to_ring(pr->post, pr->receptor, time + (uint32_t) pr->delay, j, pr->words[i * n_post + j]);
        }
    }
}

int main(void) {
    read_network();
    for (int p = 0; p < NP; p++) {
        for (int i = 0; i < pops[p].size; i++) {
            printf("%d %d %d %u %u %d\n", bitsk(pops[p].ts[i]), bitsk(pops[p].neuron0[i].R_membrane),
                   pops[p].neuron0[i].T_refract, bitsulr(pops[p].exp_syn[i][0].init),
                   bitsulr(pops[p].exp_syn[i][1].init), bitsk(pops[p].scale_factor[i]));
        }
    }
    int per_tick = 0;
    for (int k = 0; k < NI; k++) {
        per_tick += input_size[k];
    }
    for (int b = 0; b < B; b++) {
        for (int p = 0; p < NP; p++) {
            for (int i = 0; i < pops[p].size; i++) {
                pops[p].neuron[i] = pops[p].neuron0[i];
                for (int r = 0; r < 2; r++) {
                    pops[p].exp_syn[i][r].synaptic_input_value = pops[p].isyn0[i][r];
                    pops[p].delta_syn[i][r] = pops[p].isyn0[i][r];
                }
            }
        }
        for (int p = 0; p < MAX_POPS; p++)
            for (int r = 0; r < 2; r++)
                for (int s = 0; s < RB_SLOTS; s++)
                    for (int j = 0; j < MAX_N; j++)
                        ring[p][r][s][j] = 0;

        for (uint32_t time = 0; time < (uint32_t) T; time++) {
            /* neuron_transfer */
            for (int p = 0; p < NP; p++) {
                population_t *pop = &pops[p];
                for (int r = 0; r < 2; r++) {
                    for (int j = 0; j < pop->size; j++) {
                        weight_t *cell = &ring[p][r][time & (RB_SLOTS - 1)][j];
                        weight_t value = *cell;
                        if (value > 0) {
                            input_t val_to_add = synapse_row_convert_weight_to_input(value, pop->shift[r]);
                            if (pop->model == 0) {
                                add_input_exp(&pop->exp_syn[j][r], val_to_add);
                            } else {
                                pop->delta_syn[j][r] += val_to_add;
                            }
                        }
                        *cell = 0;
                    }
                }
            }
            /* this tick's input spikes (their slots are time + delay, not this one) */
            const uint8_t *tick_spikes = &spikes_in[((long) b * T + time) * per_tick];
            for (int q = 0; q < NQ; q++) {
                projection_t *pr = &projs[q];
                if (pr->pre_is_pop) {
                    continue;
                }
                int offset = 0;
                for (int k = 0; k < pr->pre; k++) {
                    offset += input_size[k];
                }
                int n_post = pops[pr->post].size;
                for (int i = 0; i < input_size[pr->pre]; i++) {
                    if (tick_spikes[offset + i]) {
                        for (int j = 0; j < n_post; j++) {
                            add_to_ring(pr->post, pr->receptor, time + (uint32_t) pr->delay, j,
                                        pr->words[i * n_post + j]);
                        }
                    }
                }
            }
            /* neuron_impl_do_timestep_update */
            for (int p = 0; p < NP; p++) {
                population_t *pop = &pops[p];
                for (int i = 0; i < pop->size; i++) {
                    neuron_t *this_neuron = &pop->neuron[i];
                    state_t soma_voltage = this_neuron->V_membrane;
                    input_t exc, inh;
                    if (pop->model == 0) {
                        exc = pop->exp_syn[i][0].synaptic_input_value;
                        inh = pop->exp_syn[i][1].synaptic_input_value;
                    } else {
                        /* input_type_delta: get_input_value, then convert to current */
                        exc = pop->delta_syn[i][0] * ONE;
                        inh = pop->delta_syn[i][1] * ONE;
                        exc = exc * pop->scale_factor[i];
                        inh = inh * pop->scale_factor[i];
                    }
                    state_t result = neuron_model_state_update(exc, inh, ZERO, ZERO, this_neuron);
                    bool spike_now = bitsk(result) >= bitsk(pop->threshold[i]);
                    if (spike_now) {
                        neuron_model_has_spiked(this_neuron);
                        send_spike(p, i, time);
                    }
                    printf("%d %d\n", spike_now ? 1 : 0, bitsk(soma_voltage));
                    /* synapse_types_shape_input */
                    if (pop->model == 0) {
                        exp_shaping(&pop->exp_syn[i][0]);
                        exp_shaping(&pop->exp_syn[i][1]);
                    } else {
                        pop->delta_syn[i][0] = ZERO;
                        pop->delta_syn[i][1] = ZERO;
                    }
                }
            }
        }
        for (int p = 0; p < NP; p++) {
            for (int i = 0; i < pops[p].size; i++) {
                input_t e = pops[p].model == 0 ? pops[p].exp_syn[i][0].synaptic_input_value : pops[p].delta_syn[i][0];
                input_t h = pops[p].model == 0 ? pops[p].exp_syn[i][1].synaptic_input_value : pops[p].delta_syn[i][1];
                printf("%d %d %d %d\n", bitsk(pops[p].neuron[i].V_membrane), pops[p].neuron[i].refract_timer,
                       bitsk(e), bitsk(h));
            }
        }
    }
    return 0;
}
