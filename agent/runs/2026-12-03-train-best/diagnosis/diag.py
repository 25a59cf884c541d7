import json, sys, numpy as np
sys.path.insert(0, '')
from kis_gym import KisEnv
import kis_gym
scen = json.load(open(sys.argv[1]))
cap16 = 16/0.07717
def run(policy, seed):
    env = KisEnv(scen)
    obs, info = env.reset(seed=seed)
    rew = 0; arr = 0; n = 0; reps = []; miss = []; 
    done = False
    while not done:
        m = env.unwrapped._env.mask() if hasattr(env.unwrapped,'_env') else None
        a = policy(obs)
        obs, r, term, trunc, info = env.step(a)
        rew += r; arr += info['arrivals']; n += 1; reps.append(info['replicas'][0]); miss.append((info['slo_miss'], info['cohort']))
        done = term or trunc
    w = sum(c for _, c in miss); mm = sum(s*c for s, c in miss)/max(w,1)
    return rew, arr/(n*scen['step_seconds'])/(max(reps)/0.07717), n, np.mean(reps), mm
up = lambda o: np.array([4,2,1])
hold = lambda o: np.array([2,2,1])
rows = []
for seed in range(int(sys.argv[2]) if len(sys.argv) > 2 else 30):
    a = run(up, seed); b = run(hold, seed)
    rows.append((a[1], a[2], a[0], a[3], a[4], b[0], b[3], b[4]))
r = np.array(rows)
print("load(mean rate / episode fleet, for the max policy): mean %.2f p10 %.2f p50 %.2f p90 %.2f" % (r[:,0].mean(), *np.percentile(r[:,0],[10,50,90])))
print("steps per episode: mean %.0f" % r[:,1].mean())
print("max-policy: return %.2f reps %.1f miss %.3f" % (r[:,2].mean(), r[:,3].mean(), r[:,4].mean()))
print("hold-policy: return %.2f reps %.1f miss %.3f" % (r[:,5].mean(), r[:,6].mean(), r[:,7].mean()))
print("max better than hold in %d/%d episodes" % ((r[:,2] > r[:,5]).sum(), len(r)))
