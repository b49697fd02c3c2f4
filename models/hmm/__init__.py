"""Hidden Markov models: the kernels (forward-backward, Viterbi, FFBS), sequence data, exact
enumeration, and the categorical and Gaussian HMMs."""
