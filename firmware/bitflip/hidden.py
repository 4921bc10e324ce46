# Rule v1 for hidden layers ("flip"): each hidden unit in error moves the weight states of
# a random 1/2**k subset of its erroneous contributions one step, on every sample
# (kernels.flip_row / update_row), with the run's weight kind. Simple, and measured weak:
# weights whose pushes cancel over samples get randomised (docs/research/hidden-layers.md);
# the pool rule (pool.py) is the default for hidden layers.
#
# The hidden-rule seam (rule.Trainer calls these; pool.PoolRule is the other one):
#   votes_from_updates  True: the top's update directions vote on the hidden layers
#   start()             before a sample's learning step
#   learn(li, layer, x, n)  layer li's n units in error (layer.idx, layer.dirs); x its input
#   end(e)              after the step; e = the sample's epoch (0-based)
#   planes(li)          extra model planes of hidden layer li, (name, buffer), spec.planes order
#   state()             extra checkpoint buffers, spec.state order
#   nbytes()            bytes it allocated


class FlipRule:
    votes_from_updates = True

    def __init__(self, trainer, cfg):
        self.t = trainer

    def nbytes(self):
        return 0

    def planes(self, li):
        return ()

    def state(self):
        return []

    def start(self):
        pass

    def learn(self, li, layer, x, n):
        t = self.t
        k = t.k[li]
        dirs = layer.dirs
        idx = layer.idx
        for i in range(n):
            j = idx[i]
            t.writes += layer.update(j, x, dirs[j] == 1, k, t.ks, t.st, li)
        t.updates += n
        t.upd_words += n * layer.nw

    def end(self, e):
        pass
