# The paper's Copy-Paste step, shared by every `-scp-` row (LVIS Mask R-CNN family, CenterNet2,
# COCO): objects of another training image pasted onto the image, as X-Paste's code does it
# (simple copy-paste, Ghiasi et al. 2021: a random subset of the source's objects, occlusion
# filter 10 px / 300 px at the 640 px training crops; the canvas grows to the pasted objects'
# extent, CopyPasteAnySize in xpaste/datasets/copy_paste.py). A row puts it in `paste_steps`.
copypaste = dict(type='CopyPasteAnySize', max_num_pasted=100, bbox_occluded_thr=10,
                 mask_occluded_thr=300, selected=True)
