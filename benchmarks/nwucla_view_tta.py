import sys, json, numpy as np
from actionpose.data.format import load_dataset
from actionpose.inference.predictor import load_predictor
model, split = sys.argv[1], sys.argv[2]
ds = load_dataset("/tmp/nwucla.pkl")
byid = {a["frame_dir"]: a for a in ds.annotations}
anns = [byid[i] for i in ds.split[split]]
pred = load_predictor(model, threads=1)
labels = np.array([a["label"] for a in anns])
def rot_y(kp, deg):
    t = np.deg2rad(deg); c, s = np.cos(t), np.sin(t)
    R = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)
    return kp @ R.T
res = {}
for ang in [0, -30, -15, 15, 30]:
    seqs = [(rot_y(np.asarray(a["keypoint"], np.float32), ang), a.get("keypoint_score")) for a in anns]
    res[ang] = pred.predict_sequences(seqs)
    print(ang, "top1 %.2f" % (100 * (res[ang].argmax(1) == labels).mean()), flush=True)
for name, angs in [("tta5", [0, -30, -15, 15, 30]), ("tta3", [0, -15, 15])]:
    p = np.mean([res[a] for a in angs], 0)
    print(name, "top1 %.2f" % (100 * (p.argmax(1) == labels).mean()), flush=True)
