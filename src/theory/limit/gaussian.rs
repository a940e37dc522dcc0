//! The Gaussian expectations a sign update needs in the infinite-width limit, in closed form.
//!
//! A sign update moves every row $i$ of a factor by $-\eta\,\mathrm{sign}(X_i)$, where $X_i$ is a linear combination of
//! the row's i.i.d. Gaussian coordinates (readout $v_i$, input-weight row $w_i$). Its effect on an overlap
//! $\tfrac1n\sum_i \mathrm{sign}(X_i)\,Y_i$ tends to $\mathbb E[\mathrm{sign}(X)\,Y]$ by the law of large numbers (error
//! $O(n^{-1/2})$), and for jointly Gaussian, centred $(X, Y)$ Stein's lemma gives it exactly:
//! $$\mathbb E[\mathrm{sign}(X)\,Y] = \frac{\mathrm{Cov}(X, Y)}{\mathrm{Var}(X)}\,\mathbb E|X|
//!   = \sqrt{\tfrac{2}{\pi}}\;\frac{\mathrm{Cov}(X,Y)}{\sqrt{\mathrm{Var}(X)}},$$
//! since $Y = \tfrac{\mathrm{Cov}}{\mathrm{Var}}X + Y_\perp$ with $Y_\perp$ independent of $X$. The method is exact:
//! the only error is floating-point round-off (a few ulp). `tests/limit.rs` checks it against Monte Carlo.

/// $\mathbb E|Z|$ for $Z \sim \mathcal N(0, 1)$: $\sqrt{2/\pi}$.
pub const E_ABS_STD_NORMAL: f64 = 0.797_884_560_802_865_4;

/// $\mathbb E[\mathrm{sign}(X)\,Y]$ for centred jointly Gaussian $(X, Y)$ with $\mathrm{Var}(X)$ = `var_x` and
/// $\mathrm{Cov}(X, Y)$ = `cov_xy`. With `var_x` = 0, $X = 0$ almost surely and $\mathrm{sign}(0) = 0$ (the convention
/// of `Rule::SignSgd`), so the expectation is 0.
pub fn e_sign_times(cov_xy: f64, var_x: f64) -> f64 {
    if var_x > 0.0 {
        E_ABS_STD_NORMAL * cov_xy / var_x.sqrt()
    } else {
        0.0
    }
}
