//! A Cholesky factorisation `A = L Lᵀ` of the symmetric cross-product matrices of a
//! fit (`X'X`, `X'WX`), with the rank check the saturation rule needs.
//!
//! Column `j`'s pivot is what is left of `a_jj` once the earlier columns are accounted
//! for: the squared distance of term `j` from the span of the earlier terms. A pivot at
//! most [`RANK_TOLERANCE`] times `a_jj` means term `j` is (to working precision) a
//! combination of earlier ones, a constant column next to the intercept, or a
//! duplicate; the factorisation stops there and names `j`. The tolerance is relative,
//! so it does not depend on the scale of the column.
//!
//! Matrices are dense, row-major `p × p`, and only their upper triangle (`i ≤ j`) is
//! read: the fit accumulates only that half.

/// A pivot at most this share of its diagonal entry counts as zero.
pub(crate) const RANK_TOLERANCE: f64 = 1e-10;

/// The lower-triangular factor `L` of a positive definite matrix.
#[derive(Debug, Clone)]
pub(crate) struct Cholesky {
    /// Order of the matrix.
    p: usize,
    /// `L`, row-major `p × p` (the upper part is zero).
    l: Vec<f64>,
}

impl Cholesky {
    /// Factorises the symmetric `p × p` matrix whose upper triangle is in `a`; on a
    /// pivot that is not clearly positive, the index of the term that failed.
    pub(crate) fn new(a: &[f64], p: usize) -> Result<Self, usize> {
        if a.len() != p * p {
            return Err(0);
        }
        let mut l = vec![0.0; p * p];
        for j in 0..p {
            let diagonal = a[j * p + j];
            let row_j = &l[j * p..j * p + j];
            let pivot = diagonal - row_j.iter().map(|v| v * v).sum::<f64>();
            // `!(… > …)` also refuses NaN.
            if !(diagonal > 0.0 && pivot > RANK_TOLERANCE * diagonal) {
                return Err(j);
            }
            let root = pivot.sqrt();
            l[j * p + j] = root;
            for i in j + 1..p {
                // a_ij with i > j is stored as a_ji (upper triangle).
                let dot: f64 = (0..j).map(|k| l[i * p + k] * l[j * p + k]).sum();
                l[i * p + j] = (a[j * p + i] - dot) / root;
            }
        }
        Ok(Self { p, l })
    }

    /// Solves `A x = b`.
    pub(crate) fn solve(&self, b: &[f64]) -> Vec<f64> {
        let p = self.p;
        let l = &self.l;
        // L z = b.
        let mut z = vec![0.0; p];
        for i in 0..p {
            let dot: f64 = (0..i).map(|k| l[i * p + k] * z[k]).sum();
            z[i] = (b.get(i).copied().unwrap_or(0.0) - dot) / l[i * p + i];
        }
        // Lᵀ x = z.
        let mut x = vec![0.0; p];
        for i in (0..p).rev() {
            let dot: f64 = (i + 1..p).map(|k| l[k * p + i] * x[k]).sum();
            x[i] = (z[i] - dot) / l[i * p + i];
        }
        x
    }

    /// The diagonal of `A⁻¹ = L⁻ᵀ L⁻¹`: entry `i` is the squared norm of column `i` of
    /// `L⁻¹`, found by forward substitution of the unit vector `e_i` (entries above `i`
    /// are zero).
    pub(crate) fn inverse_diagonal(&self) -> Vec<f64> {
        let p = self.p;
        let l = &self.l;
        let mut column = vec![0.0; p];
        (0..p)
            .map(|i| {
                column[i] = 1.0 / l[i * p + i];
                let mut squares = column[i] * column[i];
                for k in i + 1..p {
                    let dot: f64 = (i..k).map(|j| l[k * p + j] * column[j]).sum();
                    column[k] = -dot / l[k * p + k];
                    squares += column[k] * column[k];
                }
                squares
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_inverts_and_names_the_dependent_term() {
        // A = [[4, 2, 0], [2, 5, 1], [0, 1, 3]] (upper triangle given; the lower half is
        // ignored, so it holds garbage here).
        let a = [4.0, 2.0, 0.0, 99.0, 5.0, 1.0, 99.0, 99.0, 3.0];
        let chol = Cholesky::new(&a, 3).unwrap();
        let x = chol.solve(&[2.0, 9.0, 7.0]);
        let full = [[4.0, 2.0, 0.0], [2.0, 5.0, 1.0], [0.0, 1.0, 3.0]];
        for (row, b) in full.iter().zip([2.0, 9.0, 7.0]) {
            let ax: f64 = row.iter().zip(&x).map(|(a, x)| a * x).sum();
            assert!((ax - b).abs() < 1e-12, "{x:?}");
        }
        // The inverse's diagonal: A⁻¹ = adj(A) / det(A), det = 4·14 − 2·6 = 44.
        let expected = [14.0 / 44.0, 12.0 / 44.0, 16.0 / 44.0];
        for (got, want) in chol.inverse_diagonal().iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        // Term 2 = term 0 + term 1: X'X of columns (1,0), (0,1), (1,1).
        let singular = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 2.0];
        assert_eq!(Cholesky::new(&singular, 3).unwrap_err(), 2);
        // A zero column.
        assert_eq!(Cholesky::new(&[1.0, 0.0, 0.0, 0.0], 2).unwrap_err(), 1);
    }
}
